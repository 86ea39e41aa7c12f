#!/usr/bin/python3
"""Markdown table of one bench/pg/run.sh run: pglogical and duplex side by side.

Usage: bench/pg/table.py OUT_DIR      (reads pglogical.json, duplex.json; prints markdown)

The last column checks duplex against the targets of issue 4, as ratios to pglogical in the
same run: p99 latency <= 2x pglogical's and < 10 ms; 100k-row UPDATE rows/s >= pglogical's;
converged < 1 s after two-sided load stops; field merge 20/20; 45 s outage caught up, 0 lost.
"""
import json
import os
import sys


def load(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def get(res, test, key):
    if not res or test not in res:
        return None
    return res[test].get(key)


def fmt(v, unit=''):
    if v is None:
        return '–'
    if isinstance(v, bool):
        return 'yes' if v else '**no**'
    if isinstance(v, float):
        v = ('%.2f' % v) if abs(v) < 100 else ('{:,.0f}'.format(v))
    elif isinstance(v, int):
        v = '{:,}'.format(v)
    return '%s%s' % (v, unit)


def verdict(ok):
    if ok is None:
        return 'not measured'
    return 'met' if ok else '**missed**'


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else 'build/pgbench'
    plg = load(os.path.join(out, 'pglogical.json'))
    dpx = load(os.path.join(out, 'duplex.json'))
    rows = []

    def row(test, metric, fn, target=''):
        rows.append((test, metric, fn(plg), fn(dpx), target))

    def lat(r):
        if not r or 'latency' not in r:
            return '–'
        x = r['latency']
        s = '%s / %s / **%s** / %s' % (x['p50_ms'], x['p95_ms'], x['p99_ms'], x['max_ms'])
        if x.get('timeouts'):
            s += ' (%d timeouts)' % x['timeouts']
        return s

    p99p, p99d = get(plg, 'latency', 'p99_ms'), get(dpx, 'latency', 'p99_ms')
    t = None if p99p is None or p99d is None else (p99d <= 2 * p99p and p99d < 10)
    row('latency A→B, 200 samples', 'p50 / p95 / p99 / max (ms)', lat,
        'p99 ≤ 2× pglogical (%s ms) and < 10 ms: %s' % (fmt(2 * p99p) if p99p else '–', verdict(t)))

    def b10(r):
        if not r or 'bulk10k' not in r:
            return '–'
        x = r['bulk10k']
        return '%s (A wrote %s) / lag %s s / checksum equal %s' % (
            fmt(x['rows_per_s_end_to_end']), fmt(x['A_write_rate_rows_per_s']),
            fmt(x['lag_after_last_commit_s']), fmt(x['full_checksum_equal']))
    row('10k single-row UPDATE txns on A', 'rows/s end to end (A write rate) / lag after last commit', b10)

    def b100(r):
        if not r or 'bulk100k' not in r:
            return '–'
        x = r['bulk100k']
        return '**%s** / %s / stmt %s s, lag %s s / checksum equal %s' % (
            fmt(x['rows_per_s_end_to_end']), fmt(x['rows_per_s_apply_only']), fmt(x['stmt_s_on_A']),
            fmt(x['lag_after_commit_s']), fmt(x['full_checksum_equal']))
    rp, rd = get(plg, 'bulk100k', 'rows_per_s_end_to_end'), get(dpx, 'bulk100k', 'rows_per_s_end_to_end')
    t = None if rp is None or rd is None else rd >= rp
    ratio = ' (%.2f×)' % (rd / rp) if rp and rd else ''
    row('one 100k-row UPDATE on A', 'rows/s end to end / apply only / statement, lag after commit',
        b100, 'end to end ≥ pglogical%s: %s' % (ratio, verdict(t)))

    def conc(r):
        if not r or 'concurrent' not in r:
            return '–'
        x = r['concurrent']
        s = 'converged %s after **%s s** (writes %s s); diverged keys %s; of %s keys written by both: ' \
            'latest write won %s, older won %s, neither %s; single-writer updates lost %s' % (
                fmt(x['converged']), fmt(x['converge_after_writes_s']), fmt(x['write_phase_s']),
                fmt(x['diverged_keys_A_vs_B']), fmt(x['keys_written_by_both']),
                fmt(x['both_written_latest_ts_won']), fmt(x['both_written_older_ts_won']),
                fmt(x['both_written_final_neither_last_write']),
                fmt(x['single_writer_keys_lost_update']))
        if 'tool_reported_conflicts' in x:
            s += '; conflicts logged %s' % fmt(x['tool_reported_conflicts'])
        return s
    cd = get(dpx, 'concurrent', 'converge_after_writes_s')
    t = None if dpx is None or 'concurrent' not in dpx else (
        bool(dpx['concurrent']['converged']) and cd is not None and cd < 1.0)
    row('5k UPDATEs on A + 5k on B at once, keys 1..2000', 'convergence and winners', conc,
        'converged < 1 s after the writes: %s' % verdict(t))

    def fm(r):
        if not r or 'fieldmerge' not in r:
            return '–'
        x = r['fieldmerge']
        return '**%s** / %s / %s / %s' % (x['both_changes_kept_field_merge'], x['only_A_email_kept'],
                                          x['only_B_balance_kept'], x['diverged'])
    fd = get(dpx, 'fieldmerge', 'both_changes_kept_field_merge')
    row('20 rows: A sets email, B sets balance, together', 'both kept / only A / only B / diverged', fm,
        '20 of 20 both kept: %s' % verdict(None if fd is None else fd == 20))

    def pc(r):
        if not r or 'parentchild' not in r:
            return '–'
        x = r['parentchild']
        return 'all arrived %s in %s s; orders %s/%s, orphans %s' % (
            fmt(x['all_arrived']), fmt(x['arrive_s']), fmt(x['B_orders']), fmt(x['orders']),
            fmt(x['orphan_orders_on_B']))
    row('20 txns × (1 customer + 5 orders) on A', 'parent/child on B', pc)

    def outage(name):
        def f(r):
            if not r or name not in r:
                return '–'
            x = r[name]
            return 'caught up %s s after B started; lost %s of %s; checksum equal %s' % (
                fmt(x['catch_up_after_B_started_s']), fmt(x['lost']), fmt(x['updates_while_B_down']),
                fmt(x['full_checksum_equal']))
        return f
    row('B stopped 20 s, 2,000 UPDATEs on A', 'catch-up / lost', outage('outage'))
    o = dpx.get('outage_45s') if dpx else None
    t = None if o is None else (o['lost'] == 0 and o['catch_up_after_B_started_s'] is not None
                                and o['full_checksum_equal'])
    row('B stopped 45 s, 2,000 UPDATEs on A', 'catch-up / lost', outage('outage_45s'),
        'caught up by itself, 0 lost: %s' % verdict(t))

    print('| test | metric | pglogical | duplex | target for duplex |')
    print('|---|---|---|---|---|')
    for r in rows:
        print('| %s |' % ' | '.join(r))
    for name, r in (('duplex', dpx), ('pglogical', plg)):
        if r is None:
            print('\n%s: no results.' % name)
        elif 'error' in r:
            print('\n%s: not measured: %s' % (name, r['error']))


if __name__ == '__main__':
    main()
