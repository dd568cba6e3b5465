#!/bin/sh
# Run by the test VM's init for tools/dev vmtest --real-iommu: what the
# guest's VT-d driver said at boot, then the real-IOMMU scenarios.
#   pri-test.sh BUILDDIR [SCENARIO...]
B=$1
shift
echo "--- kernel: IOMMU, PCI capabilities"
dmesg | grep -iE 'dmar|iommu|pasid|pri|ats|vfio' | grep -v 'Command line' | head -n 40 | sed 's/^/# dmesg: /'
"$B/iopfd-vmtest-pri" "$B/iopfd" "$@"
rc=$?
echo "--- kernel: after the scenarios"
dmesg | grep -iE 'dmar|iommu|prq|page request|fault' | tail -n 20 | sed 's/^/# dmesg: /'
exit $rc
