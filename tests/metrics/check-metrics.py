#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""iopfctl metrics as Prometheus's tools read it.

A daemon on a private socket serves emulated devices (iopf-bench, mlock
backend) while a client of this script holds an address space whose name
has quotes, a backslash and a newline in it. Meanwhile iopfctl prints the
metrics in both formats. Then:

- promtool check metrics reads the Prometheus text format without a word
  (it cannot read OpenMetrics: prometheus/prometheus#8932);
- the OpenMetrics parser of prometheus_client reads the OpenMetrics text,
  and both texts carry the same samples (values aside: they were
  printed a moment apart);
- the figures hang together: the families named in iopfctl(1) are there,
  the histogram's buckets are cumulative and end in its count, the odd
  name comes back as it was given.

Exits 77 (skipped) without promtool or prometheus_client.

    check-metrics.py IOPFD IOPFCTL IOPF_BENCH
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.parser import text_string_to_metric_families as parse_prometheus
except ImportError:
    print('no prometheus_client (python3-prometheus-client): skipped')
    sys.exit(77)
if not shutil.which('promtool'):
    print('no promtool (prometheus): skipped')
    sys.exit(77)

iopfd, iopfctl, bench = sys.argv[1:4]
ODD_NAME = 'a "quoted" \\ name\nover two lines'
WANT = {
    'iopfd_build': 'info', 'iopfd_start_time_seconds': 'gauge',
    'iopfd_groups_answered': 'counter', 'iopfd_faults_answered': 'counter',
    'iopfd_groups_invalid': 'counter', 'iopfd_service_time_seconds': 'histogram',
    'iopfd_space_map_calls': 'counter', 'iopfd_space_unmap_calls': 'counter',
    'iopfd_space_evictions': 'counter', 'iopfd_space_pinned_bytes': 'gauge',
    'iopfd_user_pin_budget_bytes': 'gauge', 'iopfd_user_pin_reserved_bytes': 'gauge',
    'iopfd_pinned_bytes': 'gauge', 'iopfd_queues': 'gauge', 'iopfd_clients': 'gauge',
}
problems = []


def varlink_call(sock, method, params):
    sock.sendall(json.dumps({'method': method, 'parameters': params}).encode() + b'\0')
    buf = b''
    while not buf.endswith(b'\0'):
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError('iopfd closed the connection')
        buf += chunk
    reply = json.loads(buf[:-1])
    if 'error' in reply:
        raise RuntimeError(f'{method}: {reply["error"]}')
    return reply['parameters']


with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'iopfd.sock')
    conf = os.path.join(tmp, 'iopfd.conf')
    with open(conf, 'w') as f:
        f.write('[PinBudget]\nDefault=8M\nUser=root 1G\n')
    daemon = subprocess.Popen([iopfd, '--socket', path, '--config', conf, '--workers', '2'],
                              stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if os.path.exists(path):
                break
            time.sleep(0.01)
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        holder.connect(path)
        odd = varlink_call(holder, 'io.iopfd.CreateSpace',
                           {'backend': 'none', 'quota': 4096, 'name': ODD_NAME})['space']
        om, prom = os.path.join(tmp, 'om.txt'), os.path.join(tmp, 'prom.txt')
        then = f'{iopfctl} metrics >{om} && {iopfctl} metrics --format prometheus >{prom}'
        run = subprocess.run([bench, '--modes', 'daemon', '--socket', path, '--queues', '4', '--duration-ms', '500',
                              '--backend', 'mlock', '--quota', str(1 << 20), '--pages', '1024', '--then', then],
                             capture_output=True, text=True)
        if run.returncode != 0 or not os.path.exists(om) or not os.path.exists(prom):
            print(run.stdout, run.stderr)
            sys.exit('iopf-bench or iopfctl failed')
        om_text, prom_text = open(om).read(), open(prom).read()
        holder.close()
    finally:
        daemon.terminate()
        daemon.wait()

lint = subprocess.run(['promtool', 'check', 'metrics'], input=prom_text, capture_output=True, text=True)
if lint.returncode != 0 or lint.stdout.strip() or lint.stderr.strip():
    problems.append(f'promtool check metrics (exit {lint.returncode}): {lint.stdout}{lint.stderr}')

try:
    families = {f.name: f for f in parse_openmetrics(om_text)}
except Exception as e:  # the parser says what is wrong with the text
    sys.exit(f'OpenMetrics parser: {e}\n{om_text}')
for name, kind in WANT.items():
    if name not in families:
        problems.append(f'{name}: missing')
    elif families[name].type != kind:
        problems.append(f'{name}: {families[name].type}, expected {kind}')


def samples(fams):
    # Names and labels: the two texts were printed at different moments.
    return {(s.name, tuple(sorted(s.labels.items()))) for f in fams for s in f.samples}


om_samples = samples(families.values())
prom_samples = samples(parse_prometheus(prom_text))
if om_samples != prom_samples:
    problems.append(f'the formats differ: {sorted(om_samples ^ prom_samples)[:6]}')

hist = families.get('iopfd_service_time_seconds')
if hist:
    buckets = [s for s in hist.samples if s.name.endswith('_bucket')]
    count = next(s.value for s in hist.samples if s.name.endswith('_count'))
    values = [s.value for s in buckets]
    if values != sorted(values) or buckets[-1].labels['le'] != '+Inf' or values[-1] != count:
        problems.append('service time: buckets not cumulative or not ending in the count')
    answered = families['iopfd_groups_answered'].samples[0].value
    if not 0 < count <= answered:
        problems.append(f'service time: {count} groups measured of {answered} answered')
names = {s.labels.get('name') for s in families['iopfd_space_pinned_bytes'].samples
         if s.labels.get('space') == str(odd)}
if names != {ODD_NAME}:
    problems.append(f'the odd space name came back as {names}')
budgets = {s.labels['grant']: s.value for s in families['iopfd_user_pin_budget_bytes'].samples}
if budgets.get('user root') != float(1 << 30):
    problems.append(f'root\'s budget: {budgets}')

print('\n'.join(problems) or f'{len(families)} families, {len(om_samples)} samples: promtool clean, '
      'OpenMetrics parsed, both formats alike')
sys.exit(1 if problems else 0)
