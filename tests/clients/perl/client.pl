#!/usr/bin/perl
# The scenario through Perl DBI with DBD::MariaDB.
# After the shared steps (client-side placeholders, DBD::MariaDB's default): DBI's
# begin_work/commit/rollback, AutoCommit off, and server-side prepared statements
# (mariadb_server_prepare => 1) re-executed with new values.
use strict;
use warnings;
use utf8;
use DBI;
use JSON::PP;
use FindBin;

binmode STDOUT, ':encoding(UTF-8)';
my $json = JSON::PP->new->canonical(1);

sub emit {
    my ($label, %record) = @_;
    $record{step} = $label;
    print $json->encode(\%record), "\n";
}

sub error_record {
    my ($h) = @_;
    return (error => $h->err + 0, message => $h->errstr);
}

my $dsn = "DBI:MariaDB:database=$ENV{XAP_DATABASE};host=$ENV{XAP_HOST};port=$ENV{XAP_PORT}";
my $dbh = DBI->connect($dsn, $ENV{XAP_USER}, $ENV{XAP_PASSWORD},
                       {RaiseError => 0, PrintError => 0, AutoCommit => 1});
if (!$dbh) {
    emit('connect.open', error => $DBI::err + 0, message => $DBI::errstr);
    exit 0;
}
emit('connect.open');

sub run_step {
    my ($label, $sql, $params, $attrs) = @_;
    my $sth = $dbh->prepare($sql, $attrs || {});
    if (!$sth) { emit($label, error_record($dbh)); return; }
    my $rv = $sth->execute(@{$params || []});
    if (!defined $rv) { emit($label, error_record($sth)); return; }
    if ($sth->{NUM_OF_FIELDS}) {
        my $rows = $sth->fetchall_arrayref;
        emit($label, columns => $sth->{NAME}, rows => $rows);
    } else {
        emit($label, affected => $rv + 0, insert_id => $dbh->{mariadb_insertid});
    }
}

sub guard {
    my ($label, $code) = @_;
    my $ok = $code->();
    if ($ok) { emit($label, ok => JSON::PP::true); } else { emit($label, error_record($dbh)); }
}

open my $fh, '<:encoding(UTF-8)', "$FindBin::Bin/../scenario.tsv" or die $!;
while (my $line = <$fh>) {
    chomp $line;
    next if $line eq '' || $line =~ /^#/;
    my ($label, $sql, @raw) = split /\t/, $line;
    my @params = map { my $v = substr($_, 2); substr($_, 0, 2) eq 'i:' ? $v + 0 : $v } @raw;
    run_step($label, $sql, \@params);
}
close $fh;

guard('helper.begin_work', sub { $dbh->begin_work });
run_step('helper.insert_then_rollback', "INSERT INTO items (id, name, qty, price) VALUES (20, 'rolled', 1, NULL)");
guard('helper.rollback', sub { $dbh->rollback });
guard('helper.begin_work_again', sub { $dbh->begin_work });
run_step('helper.insert_then_commit', "INSERT INTO items (id, name, qty, price) VALUES (21, 'kept', 1, NULL)");
run_step('helper.update_other_shard', "UPDATE items SET qty = qty + 1 WHERE id = 2");
guard('helper.commit', sub { $dbh->commit });
run_step('helper.check', "SELECT id, qty FROM items WHERE id IN (2, 20, 21) ORDER BY id");
guard('helper.autocommit_off', sub { $dbh->{AutoCommit} = 0; 1 });
run_step('helper.update', "UPDATE items SET qty = 7 WHERE id IN (1, 2)");
guard('helper.rollback_autocommit_off', sub { $dbh->rollback });
guard('helper.autocommit_on', sub { $dbh->{AutoCommit} = 1; 1 });
run_step('helper.check_rolled_back', "SELECT id, qty FROM items WHERE id IN (1, 2) ORDER BY id");

my $server = {mariadb_server_prepare => 1};
run_step('prepared.select', "SELECT id, name, price FROM items WHERE id = ?", [2], $server);
run_step('prepared.insert', "INSERT INTO items (id, name, qty, price) VALUES (?, ?, ?, ?)", [40, 'srv', 4, '4.40'], $server);
run_step('prepared.limit', "SELECT id FROM items ORDER BY id LIMIT ?", [3], $server);
run_step('prepared.duplicate', "INSERT INTO items (id, name, qty) VALUES (?, ?, ?)", [1, 'dup', 1], $server);
{
    my $sth = $dbh->prepare("SELECT name FROM items WHERE id = ?", $server);
    my @out;
    for my $id (1, 2, 999) {
        $sth->execute($id);
        push @out, $sth->fetchall_arrayref;
    }
    emit('prepared.reexecute', rows => \@out);
}
run_step('end.items', "SELECT * FROM items ORDER BY id");
$dbh->disconnect;
