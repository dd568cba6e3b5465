/* SPDX-License-Identifier: MIT */
/*
 * The io.iopfd Varlink interface, as data. Its canonical text is
 * proto/io.iopfd.varlink; a test formats this definition and compares.
 */
#include "varlink-idl.h"

static SD_VARLINK_DEFINE_ENUM_TYPE(
	Transport,
	SD_VARLINK_FIELD_COMMENT("A kernel iommufd fault queue (anon inode [iommufd-pgfault])."),
	SD_VARLINK_DEFINE_ENUM_VALUE(iommufd),
	SD_VARLINK_FIELD_COMMENT("An AF_UNIX stream socket carrying the same 40-byte fault records and 8-byte responses."),
	SD_VARLINK_DEFINE_ENUM_VALUE(relay));

static SD_VARLINK_DEFINE_ENUM_TYPE(
	Backend,
	SD_VARLINK_FIELD_COMMENT("Checks regions and permissions only. It pins nothing, so it keeps no quota: pinned, pinnedPeak and evictions stay 0."),
	SD_VARLINK_DEFINE_ENUM_VALUE(none),
	SD_VARLINK_FIELD_COMMENT("Maps each region's memfd into the daemon and mlock()s faulted windows."),
	SD_VARLINK_DEFINE_ENUM_VALUE(mlock),
	SD_VARLINK_FIELD_COMMENT("Maps faulted windows into the client's IOAS (IOMMU_IOAS_MAP_FILE or IOMMU_IOAS_MAP)."),
	SD_VARLINK_DEFINE_ENUM_VALUE(iommufd));

static SD_VARLINK_DEFINE_ENUM_TYPE(
	Access,
	SD_VARLINK_FIELD_COMMENT("Device reads."),
	SD_VARLINK_DEFINE_ENUM_VALUE(read),
	SD_VARLINK_FIELD_COMMENT("Device writes."),
	SD_VARLINK_DEFINE_ENUM_VALUE(write),
	SD_VARLINK_FIELD_COMMENT("Requests with the PASID Execute bit."),
	SD_VARLINK_DEFINE_ENUM_VALUE(exec),
	SD_VARLINK_FIELD_COMMENT("Requests with the PASID Privileged bit."),
	SD_VARLINK_DEFINE_ENUM_VALUE(priv));

static SD_VARLINK_DEFINE_STRUCT_TYPE(
	Queue,
	SD_VARLINK_FIELD_COMMENT("The queue's id."),
	SD_VARLINK_DEFINE_FIELD(id, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The name given at registration."),
	SD_VARLINK_DEFINE_FIELD(name, SD_VARLINK_STRING, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("How faults arrive."),
	SD_VARLINK_DEFINE_FIELD_BY_TYPE(transport, Transport, 0),
	SD_VARLINK_FIELD_COMMENT("The uid of the client that registered it."),
	SD_VARLINK_DEFINE_FIELD(uid, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Fault groups answered."),
	SD_VARLINK_DEFINE_FIELD(groups, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Fault records in those groups."),
	SD_VARLINK_DEFINE_FIELD(faults, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Groups answered INVALID."),
	SD_VARLINK_DEFINE_FIELD(invalid, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bindings of devices on this queue."),
	SD_VARLINK_DEFINE_FIELD(bindings, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Whether it outlives its client's connection and daemon restarts."),
	SD_VARLINK_DEFINE_FIELD(persistent, SD_VARLINK_BOOL, 0));

static SD_VARLINK_DEFINE_ENUM_TYPE(
	FaultAround,
	SD_VARLINK_FIELD_COMMENT("The device's length hint, clamped to [windowMin, windowMax], aligned."),
	SD_VARLINK_DEFINE_ENUM_VALUE(fixed),
	SD_VARLINK_FIELD_COMMENT("Per device and PASID, as readahead: a fault where that device's last mapping ended doubles the window (up to windowMax, 256 KiB when unset) ahead in its direction; any other maps windowMin."),
	SD_VARLINK_DEFINE_ENUM_VALUE(adaptive),
	SD_VARLINK_FIELD_COMMENT("adaptive, and a fault in no stream also maps the rest of the largest aligned block more than half mapped already, if the quota has that room free (a guess never evicts)."),
	SD_VARLINK_DEFINE_ENUM_VALUE(density));

static SD_VARLINK_DEFINE_ENUM_TYPE(
	Eviction,
	SD_VARLINK_FIELD_COMMENT("One clock over the mapped windows. iopfd sees faults only, so it acts as first in, first out."),
	SD_VARLINK_DEFINE_ENUM_VALUE(clock),
	SD_VARLINK_FIELD_COMMENT("New windows on probation, evicted first while they hold more than a quarter of the quota; a page that faults back soon after its eviction joins the main clock. A scan or an unused prefetch does not push out what keeps coming back."),
	SD_VARLINK_DEFINE_ENUM_VALUE(twoQueue));

static SD_VARLINK_DEFINE_STRUCT_TYPE(
	Space,
	SD_VARLINK_FIELD_COMMENT("The address space's id."),
	SD_VARLINK_DEFINE_FIELD(id, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The name given at creation."),
	SD_VARLINK_DEFINE_FIELD(name, SD_VARLINK_STRING, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("How pages are pinned and mapped."),
	SD_VARLINK_DEFINE_FIELD_BY_TYPE(backend, Backend, 0),
	SD_VARLINK_FIELD_COMMENT("How much is mapped around a fault."),
	SD_VARLINK_DEFINE_FIELD_BY_TYPE(faultAround, FaultAround, 0),
	SD_VARLINK_FIELD_COMMENT("Which windows go when the quota needs room."),
	SD_VARLINK_DEFINE_FIELD_BY_TYPE(eviction, Eviction, 0),
	SD_VARLINK_FIELD_COMMENT("The uid of the client that created it."),
	SD_VARLINK_DEFINE_FIELD(uid, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes that may be pinned at once."),
	SD_VARLINK_DEFINE_FIELD(quota, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes pinned now."),
	SD_VARLINK_DEFINE_FIELD(pinned, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Most bytes ever pinned at once."),
	SD_VARLINK_DEFINE_FIELD(pinnedPeak, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Regions in it."),
	SD_VARLINK_DEFINE_FIELD(regions, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bindings that route faults to it."),
	SD_VARLINK_DEFINE_FIELD(bindings, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Backend map calls."),
	SD_VARLINK_DEFINE_FIELD(maps, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Backend unmap calls."),
	SD_VARLINK_DEFINE_FIELD(unmaps, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Areas evicted to stay under the quota."),
	SD_VARLINK_DEFINE_FIELD(evictions, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Backend map calls that failed."),
	SD_VARLINK_DEFINE_FIELD(mapErrors, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Whether it outlives its client's connection and daemon restarts."),
	SD_VARLINK_DEFINE_FIELD(persistent, SD_VARLINK_BOOL, 0));

static SD_VARLINK_DEFINE_STRUCT_TYPE(
	Binding,
	SD_VARLINK_FIELD_COMMENT("The queue the device's faults arrive on."),
	SD_VARLINK_DEFINE_FIELD(queue, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The device id in the fault records (dev_id)."),
	SD_VARLINK_DEFINE_FIELD(device, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The PASID, or null for requests without one."),
	SD_VARLINK_DEFINE_FIELD(pasid, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("The address space the faults resolve in."),
	SD_VARLINK_DEFINE_FIELD(space, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_STRUCT_TYPE(
	UserUsage,
	SD_VARLINK_FIELD_COMMENT("The user."),
	SD_VARLINK_DEFINE_FIELD(uid, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes its pinning address spaces may reserve in all (their quotas); null: unlimited."),
	SD_VARLINK_DEFINE_FIELD(pinBudget, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("Where the budget comes from: \"user NAME\", \"group NAME\" or \"default\" ([PinBudget] in iopfd.conf)."),
	SD_VARLINK_DEFINE_FIELD(pinGrant, SD_VARLINK_STRING, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes reserved: the quotas of its address spaces whose backend pins."),
	SD_VARLINK_DEFINE_FIELD(pinReserved, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes those spaces pin now."),
	SD_VARLINK_DEFINE_FIELD(pinned, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Its queues."),
	SD_VARLINK_DEFINE_FIELD(queues, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Its address spaces."),
	SD_VARLINK_DEFINE_FIELD(spaces, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Its regions."),
	SD_VARLINK_DEFINE_FIELD(regions, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_STRUCT_TYPE(
	ServiceTimeBucket,
	SD_VARLINK_FIELD_COMMENT("The bucket's upper bound, nanoseconds: a power of two less one, where the workers' own finer histogram has a boundary."),
	SD_VARLINK_DEFINE_FIELD(leNs, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Groups whose service time was at most leNs: cumulative, as Prometheus's buckets."),
	SD_VARLINK_DEFINE_FIELD(count, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_STRUCT_TYPE(
	ServiceTime,
	SD_VARLINK_FIELD_COMMENT("Groups measured: every group the workers answered."),
	SD_VARLINK_DEFINE_FIELD(count, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Their service times added up, nanoseconds, estimated from the workers' histogram (within 3.2 %)."),
	SD_VARLINK_DEFINE_FIELD(sumNs, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The longest, nanoseconds."),
	SD_VARLINK_DEFINE_FIELD(maxNs, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Cumulative buckets up to 2^8 - 1 ns, 2^9 - 1 ns, ... 2^34 - 1 ns (17.2 s), always all of them; count is the last, unbounded one."),
	SD_VARLINK_DEFINE_FIELD_BY_TYPE(buckets, ServiceTimeBucket, SD_VARLINK_ARRAY));

static SD_VARLINK_DEFINE_STRUCT_TYPE(
	Statistics,
	SD_VARLINK_FIELD_COMMENT("Seconds since the daemon started."),
	SD_VARLINK_DEFINE_FIELD(uptime, SD_VARLINK_FLOAT, 0),
	SD_VARLINK_FIELD_COMMENT("Worker threads."),
	SD_VARLINK_DEFINE_FIELD(workers, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Registered queues."),
	SD_VARLINK_DEFINE_FIELD(queues, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Address spaces."),
	SD_VARLINK_DEFINE_FIELD(spaces, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bindings."),
	SD_VARLINK_DEFINE_FIELD(bindings, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Distinct devices among the bindings."),
	SD_VARLINK_DEFINE_FIELD(devices, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Connected clients."),
	SD_VARLINK_DEFINE_FIELD(clients, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Fault groups answered."),
	SD_VARLINK_DEFINE_FIELD(groups, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Fault records in those groups."),
	SD_VARLINK_DEFINE_FIELD(faults, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Groups answered SUCCESS."),
	SD_VARLINK_DEFINE_FIELD(success, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Groups answered INVALID, by reason."),
	SD_VARLINK_DEFINE_FIELD(invalid, SD_VARLINK_INT, SD_VARLINK_MAP),
	SD_VARLINK_FIELD_COMMENT("Reads, writes and epoll waits of the workers."),
	SD_VARLINK_DEFINE_FIELD(syscalls, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Reads of queues."),
	SD_VARLINK_DEFINE_FIELD(reads, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Writes of responses (one per batch, more after a refused response)."),
	SD_VARLINK_DEFINE_FIELD(writes, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Responses the kernel refused (a bug if ever non-zero)."),
	SD_VARLINK_DEFINE_FIELD(writeRejects, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Relay peers dropped for breaking the protocol."),
	SD_VARLINK_DEFINE_FIELD(protocolErrors, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Relay peers that went away."),
	SD_VARLINK_DEFINE_FIELD(hangups, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Failed reads and writes on queues."),
	SD_VARLINK_DEFINE_FIELD(ioErrors, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Relay groups half read when their queue was taken back, whose rest the peer did not send within the grace period: nobody can answer them."),
	SD_VARLINK_DEFINE_FIELD(cutGroups, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Relay answers that never left: their queue was taken back while its peer had stopped reading them."),
	SD_VARLINK_DEFINE_FIELD(unsentResponses, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes pinned now, over all address spaces."),
	SD_VARLINK_DEFINE_FIELD(pinned, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Pin budgets and use by user: every user that connected, for root; the caller alone, for others."),
	SD_VARLINK_DEFINE_FIELD_BY_TYPE(users, UserUsage, SD_VARLINK_ARRAY),
	SD_VARLINK_FIELD_COMMENT("Per-group service time (read to response written), median, microseconds."),
	SD_VARLINK_DEFINE_FIELD(p50us, SD_VARLINK_FLOAT, 0),
	SD_VARLINK_FIELD_COMMENT("The same, 99th percentile."),
	SD_VARLINK_DEFINE_FIELD(p99us, SD_VARLINK_FLOAT, 0),
	SD_VARLINK_FIELD_COMMENT("The same, 99.9th percentile."),
	SD_VARLINK_DEFINE_FIELD(p999us, SD_VARLINK_FLOAT, 0),
	SD_VARLINK_FIELD_COMMENT("The same service times as a histogram with fixed buckets, for Prometheus and systemd-report."),
	SD_VARLINK_DEFINE_FIELD_BY_TYPE(serviceTime, ServiceTime, 0),
	SD_VARLINK_FIELD_COMMENT("Control requests the daemon refused, by error name (calls that do not match the interface are refused before they reach it and are not counted)."),
	SD_VARLINK_DEFINE_FIELD(requestErrors, SD_VARLINK_INT, SD_VARLINK_MAP),
	SD_VARLINK_FIELD_COMMENT("Persistent objects this daemon took back from its predecessor."),
	SD_VARLINK_DEFINE_FIELD(restoredObjects, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Groups its predecessor read but had not answered, answered from the journal at start."),
	SD_VARLINK_DEFINE_FIELD(recoveredGroups, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Groups of a kernel queue whose answers were being written when its predecessor died, answered again at start and taken by the kernel (it refuses those it already had)."),
	SD_VARLINK_DEFINE_FIELD(reansweredGroups, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_METHOD(
	RegisterQueue,
	SD_VARLINK_FIELD_COMMENT("Index, among the fds passed with this call, of the queue's fd."),
	SD_VARLINK_DEFINE_INPUT(fdIndex, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The transport the fd must be; detected from the fd when absent."),
	SD_VARLINK_DEFINE_INPUT_BY_TYPE(transport, Transport, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("A name for listings, and to find a persistent queue again."),
	SD_VARLINK_DEFINE_INPUT(name, SD_VARLINK_STRING, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("Keep it when this connection closes and across daemon restarts, until unregistered or until the calling process exits."),
	SD_VARLINK_DEFINE_INPUT(persistent, SD_VARLINK_BOOL, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("The new queue's id."),
	SD_VARLINK_DEFINE_OUTPUT(queue, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The transport found."),
	SD_VARLINK_DEFINE_OUTPUT_BY_TYPE(transport, Transport, 0));

static SD_VARLINK_DEFINE_METHOD(
	UnregisterQueue,
	SD_VARLINK_FIELD_COMMENT("The queue to let go of, after answering every group read from it."),
	SD_VARLINK_DEFINE_INPUT(queue, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Groups iopfd read from it and answered, over its life."),
	SD_VARLINK_DEFINE_OUTPUT(groups, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Fault records in those groups."),
	SD_VARLINK_DEFINE_OUTPUT(faults, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Those of the groups answered INVALID."),
	SD_VARLINK_DEFINE_OUTPUT(invalid, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_METHOD(
	CreateSpace,
	SD_VARLINK_FIELD_COMMENT("How pages are pinned and mapped."),
	SD_VARLINK_DEFINE_INPUT_BY_TYPE(backend, Backend, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes that may be pinned at once; least recently used windows are evicted beyond it. "
	                         "A fault group is answered INVALID for quota only when it alone needs more pages than this: "
	                         "groups that need more together, in one read or not, are answered one after another, with "
	                         "pages evicted in between."),
	SD_VARLINK_DEFINE_INPUT(quota, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Tracking and mapping unit in bytes, a power of two (default 4096)."),
	SD_VARLINK_DEFINE_INPUT(pageSize, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("Fault-around: smallest window mapped per fault, bytes (default one page)."),
	SD_VARLINK_DEFINE_INPUT(windowMin, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("Largest window, bytes; caps the device's length hint and the adaptive window (default windowMin; adaptive: 256 KiB)."),
	SD_VARLINK_DEFINE_INPUT(windowMax, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("How much is mapped around a fault (default: the one that measured best, shown by ListSpaces)."),
	SD_VARLINK_DEFINE_INPUT_BY_TYPE(faultAround, FaultAround, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("Which windows go when the quota needs room (default: the one that measured best)."),
	SD_VARLINK_DEFINE_INPUT_BY_TYPE(eviction, Eviction, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("iommufd backend: index, among the fds passed with this call, of the client's iommufd."),
	SD_VARLINK_DEFINE_INPUT(iommufdIndex, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("iommufd backend: the IOAS to map into."),
	SD_VARLINK_DEFINE_INPUT(ioasId, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("A name for listings, and to find a persistent space again."),
	SD_VARLINK_DEFINE_INPUT(name, SD_VARLINK_STRING, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("Keep it (with its regions and its bindings to persistent queues) when this connection closes and across daemon restarts, until destroyed or until the calling process exits."),
	SD_VARLINK_DEFINE_INPUT(persistent, SD_VARLINK_BOOL, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("The new address space's id."),
	SD_VARLINK_DEFINE_OUTPUT(space, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_METHOD(
	DestroySpace,
	SD_VARLINK_FIELD_COMMENT("The address space to destroy: its bindings are removed and everything pinned is unmapped. The queues it is bound on stop reading meanwhile, so that every group already read resolves in it; its devices' faults read afterwards find no binding and are answered INVALID (unbind them, or take their queues back, first)."),
	SD_VARLINK_DEFINE_INPUT(space, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_METHOD(
	AddRegion,
	SD_VARLINK_FIELD_COMMENT("The address space."),
	SD_VARLINK_DEFINE_INPUT(space, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("First device address, page aligned."),
	SD_VARLINK_DEFINE_INPUT(iova, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Length in bytes, page aligned."),
	SD_VARLINK_DEFINE_INPUT(length, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Index, among the fds passed with this call, of the memfd behind the region; it must carry F_SEAL_SHRINK."),
	SD_VARLINK_DEFINE_INPUT(memfdIndex, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Offset of the region in the memfd, page aligned (default 0)."),
	SD_VARLINK_DEFINE_INPUT(offset, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("What devices may do in the region; at least read or write."),
	SD_VARLINK_DEFINE_INPUT_BY_TYPE(access, Access, SD_VARLINK_ARRAY),
	SD_VARLINK_FIELD_COMMENT("Refuse the region (InvalidRegion) unless every page of it is allocated in the memfd already (written, or the whole memfd fallocate()d): pages the daemon's pins allocate are charged to the daemon's memory cgroup, pages the client allocated stay charged to the client's. The operator may insist on it for every user but root ([PinBudget] RequireAllocated=yes)."),
	SD_VARLINK_DEFINE_INPUT(allocated, SD_VARLINK_BOOL, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("The new region's id within the address space."),
	SD_VARLINK_DEFINE_OUTPUT(region, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_METHOD(
	RemoveRegion,
	SD_VARLINK_FIELD_COMMENT("The address space."),
	SD_VARLINK_DEFINE_INPUT(space, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The region to remove; what the daemon mapped in it is unmapped first."),
	SD_VARLINK_DEFINE_INPUT(region, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_METHOD(
	Bind,
	SD_VARLINK_FIELD_COMMENT("The queue the device's faults arrive on."),
	SD_VARLINK_DEFINE_INPUT(queue, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The device id in the fault records (dev_id)."),
	SD_VARLINK_DEFINE_INPUT(device, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The PASID; null or absent for requests without one."),
	SD_VARLINK_DEFINE_INPUT(pasid, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("The address space to resolve them in."),
	SD_VARLINK_DEFINE_INPUT(space, SD_VARLINK_INT, 0));

static SD_VARLINK_DEFINE_METHOD(
	Unbind,
	SD_VARLINK_FIELD_COMMENT("The queue."),
	SD_VARLINK_DEFINE_INPUT(queue, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The device id."),
	SD_VARLINK_DEFINE_INPUT(device, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("The PASID; null or absent for requests without one."),
	SD_VARLINK_DEFINE_INPUT(pasid, SD_VARLINK_INT, SD_VARLINK_NULLABLE));

static SD_VARLINK_DEFINE_METHOD(
	ListQueues,
	SD_VARLINK_FIELD_COMMENT("The queues the caller may see (root sees all)."),
	SD_VARLINK_DEFINE_OUTPUT_BY_TYPE(queues, Queue, SD_VARLINK_ARRAY));

static SD_VARLINK_DEFINE_METHOD(
	ListSpaces,
	SD_VARLINK_FIELD_COMMENT("The address spaces the caller may see (root sees all)."),
	SD_VARLINK_DEFINE_OUTPUT_BY_TYPE(spaces, Space, SD_VARLINK_ARRAY));

static SD_VARLINK_DEFINE_METHOD(
	ListBindings,
	SD_VARLINK_FIELD_COMMENT("The bindings the caller may see (root sees all)."),
	SD_VARLINK_DEFINE_OUTPUT_BY_TYPE(bindings, Binding, SD_VARLINK_ARRAY));

static SD_VARLINK_DEFINE_METHOD(
	GetStatistics,
	SD_VARLINK_FIELD_COMMENT("The daemon's figures now."),
	SD_VARLINK_DEFINE_OUTPUT_BY_TYPE(statistics, Statistics, 0));

static SD_VARLINK_DEFINE_METHOD_FULL(
	Monitor,
	SD_VARLINK_REQUIRES_MORE,
	SD_VARLINK_FIELD_COMMENT("Milliseconds between updates (default 1000, at least 100)."),
	SD_VARLINK_DEFINE_INPUT(intervalMs, SD_VARLINK_INT, SD_VARLINK_NULLABLE),
	SD_VARLINK_FIELD_COMMENT("The daemon's figures, once per interval."),
	SD_VARLINK_DEFINE_OUTPUT_BY_TYPE(statistics, Statistics, 0));

static SD_VARLINK_DEFINE_ERROR(
	NoSuchQueue,
	SD_VARLINK_FIELD_COMMENT("The id asked for."),
	SD_VARLINK_DEFINE_FIELD(queue, SD_VARLINK_INT, 0));
static SD_VARLINK_DEFINE_ERROR(
	NoSuchSpace,
	SD_VARLINK_FIELD_COMMENT("The id asked for."),
	SD_VARLINK_DEFINE_FIELD(space, SD_VARLINK_INT, 0));
static SD_VARLINK_DEFINE_ERROR(
	NoSuchRegion,
	SD_VARLINK_FIELD_COMMENT("The id asked for."),
	SD_VARLINK_DEFINE_FIELD(region, SD_VARLINK_INT, 0));
static SD_VARLINK_DEFINE_ERROR(NoSuchBinding);
static SD_VARLINK_DEFINE_ERROR(BindingExists);
static SD_VARLINK_DEFINE_ERROR(
	BadFileDescriptor,
	SD_VARLINK_FIELD_COMMENT("The parameter naming the fd."),
	SD_VARLINK_DEFINE_FIELD(parameter, SD_VARLINK_STRING, 0),
	SD_VARLINK_FIELD_COMMENT("What is wrong with it."),
	SD_VARLINK_DEFINE_FIELD(reason, SD_VARLINK_STRING, 0));
static SD_VARLINK_DEFINE_ERROR(UnsealedMemory);
static SD_VARLINK_DEFINE_ERROR(RegionOverlap);
static SD_VARLINK_DEFINE_ERROR(RegionOutOfRange);
static SD_VARLINK_DEFINE_ERROR(
	InvalidRegion,
	SD_VARLINK_FIELD_COMMENT("What is wrong with it."),
	SD_VARLINK_DEFINE_FIELD(reason, SD_VARLINK_STRING, 0));
static SD_VARLINK_DEFINE_ERROR(
	InvalidConfiguration,
	SD_VARLINK_FIELD_COMMENT("What is wrong with it."),
	SD_VARLINK_DEFINE_FIELD(reason, SD_VARLINK_STRING, 0));
static SD_VARLINK_DEFINE_ERROR(
	LimitReached,
	SD_VARLINK_FIELD_COMMENT("The limit: queues, spaces or regions (per uid; root is not limited)."),
	SD_VARLINK_DEFINE_FIELD(limit, SD_VARLINK_STRING, 0),
	SD_VARLINK_FIELD_COMMENT("Its value."),
	SD_VARLINK_DEFINE_FIELD(max, SD_VARLINK_INT, 0));
static SD_VARLINK_DEFINE_ERROR(
	PinBudgetExceeded,
	SD_VARLINK_FIELD_COMMENT("Bytes the caller's user may reserve for pinning, over all its address spaces."),
	SD_VARLINK_DEFINE_FIELD(budget, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes its address spaces reserve already (their quotas)."),
	SD_VARLINK_DEFINE_FIELD(reserved, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Bytes this call asked for (the new space's quota)."),
	SD_VARLINK_DEFINE_FIELD(requested, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("Where the budget comes from: \"user NAME\", \"group NAME\" or \"default\"."),
	SD_VARLINK_DEFINE_FIELD(grant, SD_VARLINK_STRING, 0),
	SD_VARLINK_FIELD_COMMENT("How an operator raises it."),
	SD_VARLINK_DEFINE_FIELD(hint, SD_VARLINK_STRING, 0));
static SD_VARLINK_DEFINE_ERROR(PermissionDenied);
static SD_VARLINK_DEFINE_ERROR(
	BackendFailed,
	SD_VARLINK_FIELD_COMMENT("The errno the backend reported."),
	SD_VARLINK_DEFINE_FIELD(errno, SD_VARLINK_INT, 0),
	SD_VARLINK_FIELD_COMMENT("What failed."),
	SD_VARLINK_DEFINE_FIELD(message, SD_VARLINK_STRING, 0));
static SD_VARLINK_DEFINE_ERROR(ShuttingDown);

SD_VARLINK_DEFINE_INTERFACE(
	io_iopfd,
	"io.iopfd",
	SD_VARLINK_INTERFACE_COMMENT("iopfd: a service for IOMMU I/O page faults. A client hands over its fault"),
	SD_VARLINK_INTERFACE_COMMENT("queues and the memory behind each device address space; iopfd pins and maps"),
	SD_VARLINK_INTERFACE_COMMENT("pages on demand under a quota and answers every fault group exactly once."),
	SD_VARLINK_INTERFACE_COMMENT("fds travel with the calls (SCM_RIGHTS); parameters name them by index."),
	SD_VARLINK_INTERFACE_COMMENT("Objects belong to the connection that made them and go away with it."),
	SD_VARLINK_INTERFACE_COMMENT("A queue leaves iopfd the same way whatever takes it back (UnregisterQueue,"),
	SD_VARLINK_INTERFACE_COMMENT("its connection closing, the exit of a persistent queue's creator, a daemon"),
	SD_VARLINK_INTERFACE_COMMENT("that stops for good): iopfd stops reading it, answers every group it has"),
	SD_VARLINK_INTERFACE_COMMENT("read, resolving each normally, and only then drops the queue's bindings."),
	SD_VARLINK_INTERFACE_COMMENT("Groups it has not read stay in the queue for whoever else holds the fd: in"),
	SD_VARLINK_INTERFACE_COMMENT("the kernel's fault queue, or in a relay's stream, which it leaves at a group"),
	SD_VARLINK_INTERFACE_COMMENT("boundary. A persistent queue is handed on across a restart instead: what was"),
	SD_VARLINK_INTERFACE_COMMENT("read is answered by one daemon or the next, what was not stays for the next."),
	SD_VARLINK_SYMBOL_COMMENT("Where faults come from."),
	&vl_type_Transport,
	SD_VARLINK_SYMBOL_COMMENT("How an address space pins pages."),
	&vl_type_Backend,
	SD_VARLINK_SYMBOL_COMMENT("Permissions of a region."),
	&vl_type_Access,
	SD_VARLINK_SYMBOL_COMMENT("A registered queue."),
	&vl_type_Queue,
	SD_VARLINK_SYMBOL_COMMENT("How much an address space maps around a fault."),
	&vl_type_FaultAround,
	SD_VARLINK_SYMBOL_COMMENT("Which windows an address space evicts when its quota needs room."),
	&vl_type_Eviction,
	SD_VARLINK_SYMBOL_COMMENT("An address space."),
	&vl_type_Space,
	SD_VARLINK_SYMBOL_COMMENT("A (queue, device, PASID) routed to an address space."),
	&vl_type_Binding,
	SD_VARLINK_SYMBOL_COMMENT("A user's pin budget and what it holds."),
	&vl_type_UserUsage,
	SD_VARLINK_SYMBOL_COMMENT("A bucket of the service-time histogram."),
	&vl_type_ServiceTimeBucket,
	SD_VARLINK_SYMBOL_COMMENT("Per-group service time (read to response written) as a histogram."),
	&vl_type_ServiceTime,
	SD_VARLINK_SYMBOL_COMMENT("The daemon's figures."),
	&vl_type_Statistics,
	SD_VARLINK_SYMBOL_COMMENT("Hand a fault queue to the daemon; its fd is passed with the call."),
	&vl_method_RegisterQueue,
	SD_VARLINK_SYMBOL_COMMENT("Take a queue back. iopfd stops reading it, answers every group it has read"),
	SD_VARLINK_SYMBOL_COMMENT("(for a relay it first reads the rest of a group it read the start of, and"),
	SD_VARLINK_SYMBOL_COMMENT("delivers its pending answers, for up to 200 ms), then drops its bindings."),
	SD_VARLINK_SYMBOL_COMMENT("Groups it has not read stay in the queue: the caller reads and answers them."),
	&vl_method_UnregisterQueue,
	SD_VARLINK_SYMBOL_COMMENT("Create an address space."),
	&vl_method_CreateSpace,
	SD_VARLINK_SYMBOL_COMMENT("Destroy an address space."),
	&vl_method_DestroySpace,
	SD_VARLINK_SYMBOL_COMMENT("Add memory to an address space; the memfd is passed with the call."),
	&vl_method_AddRegion,
	SD_VARLINK_SYMBOL_COMMENT("Remove memory from an address space."),
	&vl_method_RemoveRegion,
	SD_VARLINK_SYMBOL_COMMENT("Route a device's (and PASID's) faults on a queue to an address space."),
	&vl_method_Bind,
	SD_VARLINK_SYMBOL_COMMENT("Stop routing them; later faults are answered INVALID."),
	&vl_method_Unbind,
	SD_VARLINK_SYMBOL_COMMENT("List queues."),
	&vl_method_ListQueues,
	SD_VARLINK_SYMBOL_COMMENT("List address spaces."),
	&vl_method_ListSpaces,
	SD_VARLINK_SYMBOL_COMMENT("List bindings."),
	&vl_method_ListBindings,
	SD_VARLINK_SYMBOL_COMMENT("The daemon's counters, pinned bytes and latency."),
	&vl_method_GetStatistics,
	SD_VARLINK_SYMBOL_COMMENT("The same, streamed (call with more)."),
	&vl_method_Monitor,
	SD_VARLINK_SYMBOL_COMMENT("No queue of that id that the caller may see."),
	&vl_error_NoSuchQueue,
	SD_VARLINK_SYMBOL_COMMENT("No address space of that id that the caller may see."),
	&vl_error_NoSuchSpace,
	SD_VARLINK_SYMBOL_COMMENT("No region of that id in the address space."),
	&vl_error_NoSuchRegion,
	SD_VARLINK_SYMBOL_COMMENT("Nothing is bound to that (queue, device, PASID)."),
	&vl_error_NoSuchBinding,
	SD_VARLINK_SYMBOL_COMMENT("Something is bound to that (queue, device, PASID) already."),
	&vl_error_BindingExists,
	SD_VARLINK_SYMBOL_COMMENT("An fd is missing or not of the kind needed."),
	&vl_error_BadFileDescriptor,
	SD_VARLINK_SYMBOL_COMMENT("The memfd lacks F_SEAL_SHRINK: a truncation could fault the daemon."),
	&vl_error_UnsealedMemory,
	SD_VARLINK_SYMBOL_COMMENT("The region overlaps another region of the address space."),
	&vl_error_RegionOverlap,
	SD_VARLINK_SYMBOL_COMMENT("offset + length lies beyond the end of the memfd."),
	&vl_error_RegionOutOfRange,
	SD_VARLINK_SYMBOL_COMMENT("The region's addresses, sizes or access are not acceptable."),
	&vl_error_InvalidRegion,
	SD_VARLINK_SYMBOL_COMMENT("The address space's settings are not acceptable."),
	&vl_error_InvalidConfiguration,
	SD_VARLINK_SYMBOL_COMMENT("A per-uid limit would be exceeded."),
	&vl_error_LimitReached,
	SD_VARLINK_SYMBOL_COMMENT("A pinning address space's quota would take its user past the pin budget the configuration gives it (a user without a grant: 8 MiB, what it could lock itself)."),
	&vl_error_PinBudgetExceeded,
	SD_VARLINK_SYMBOL_COMMENT("The object belongs to another user."),
	&vl_error_PermissionDenied,
	SD_VARLINK_SYMBOL_COMMENT("The backend refused (e.g. the fd is no iommufd or the IOAS does not exist)."),
	&vl_error_BackendFailed,
	SD_VARLINK_SYMBOL_COMMENT("The daemon is stopping and takes no new objects."),
	&vl_error_ShuttingDown);
