#!/usr/bin/env python3
# libiopfd exports the calls its installed header declares, each versioned
# LIBIOPFD_0, and nothing else; its soname is libiopfd.so.0.
#   check-exports.py LIBRARY HEADER
import re
import subprocess
import sys

lib, header = sys.argv[1:3]
declared = set(re.findall(r'^\w[\w\s\*]*?\b(iopfc_\w+)\(', open(header).read(), re.M))
out = subprocess.run(['nm', '-D', '--defined-only', lib], check=True, capture_output=True, text=True).stdout
exported, problems = set(), []
for line in out.splitlines():
    name = line.split()[-1]
    if name == 'LIBIOPFD_0':
        continue  # the version node itself
    base, _, version = name.partition('@@')
    if version != 'LIBIOPFD_0':
        problems.append(f'{name}: not versioned LIBIOPFD_0')
    exported.add(base)
problems += [f'{n}: exported, not in {header}' for n in sorted(exported - declared)]
problems += [f'{n}: declared, not exported' for n in sorted(declared - exported)]
dyn = subprocess.run(['readelf', '-d', lib], check=True, capture_output=True, text=True).stdout
if 'Library soname: [libiopfd.so.0]' not in dyn:
    problems.append('soname is not libiopfd.so.0')
print('\n'.join(problems) or f'{len(exported)} symbols, all declared, all LIBIOPFD_0; soname libiopfd.so.0')
sys.exit(1 if problems else 0)
