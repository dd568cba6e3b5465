/* SPDX-License-Identifier: MIT */
/*
 * The RCU flavor iopfd uses, behind one set of names.
 *
 * Workers read the binding table and region arrays inside read-side
 * sections; the control thread publishes new versions and retires old ones
 * with call_rcu. The flavor is a build option (meson -Drcu=qsbr|memb) chosen
 * by bench/rcu-flavor: with QSBR the read side costs nothing and a worker is
 * offline while it blocks in epoll_wait, so it never holds up a grace period.
 *
 * Every thread that touches RCU data calls iopf_rcu_register() first.
 * Every call_rcu callback starts with IOPF_RCU_AFTER_GP().
 * A thread that is not a worker (control, tests) keeps itself offline while
 * it is not reading: iopf_rcu_online()/iopf_rcu_offline() around its reads.
 */
#pragma once

#define _LGPL_SOURCE 1

#if defined(IOPFD_RCU_QSBR)
#include <urcu/urcu-qsbr.h>
#define IOPF_RCU_FLAVOR urcu_qsbr_flavor
#define IOPF_RCU_NAME "qsbr"
#define iopf_rcu_register() urcu_qsbr_register_thread()
#define iopf_rcu_unregister() urcu_qsbr_unregister_thread()
#define iopf_rcu_read_lock() urcu_qsbr_read_lock()
#define iopf_rcu_read_unlock() urcu_qsbr_read_unlock()
#define iopf_rcu_read_unlock_raw() urcu_qsbr_read_unlock()
#define iopf_rcu_online() urcu_qsbr_thread_online()
#define iopf_rcu_offline() urcu_qsbr_thread_offline()
#define iopf_rcu_quiescent() urcu_qsbr_quiescent_state()
#define iopf_rcu_synchronize() urcu_qsbr_synchronize_rcu()
#define iopf_rcu_synchronize_raw() urcu_qsbr_synchronize_rcu()
#define iopf_rcu_call(head, fn) urcu_qsbr_call_rcu((head), (fn))
#define iopf_rcu_call_raw(head, fn) urcu_qsbr_call_rcu((head), (fn))
#define iopf_rcu_barrier() urcu_qsbr_barrier()
#else
#include <urcu/urcu-memb.h>
#define IOPF_RCU_FLAVOR urcu_memb_flavor
#define IOPF_RCU_NAME "memb"
#define iopf_rcu_register() urcu_memb_register_thread()
#define iopf_rcu_unregister() urcu_memb_unregister_thread()
#define iopf_rcu_read_lock() urcu_memb_read_lock()
#define iopf_rcu_read_unlock() urcu_memb_read_unlock()
#define iopf_rcu_read_unlock_raw() urcu_memb_read_unlock()
#define iopf_rcu_online() ((void)0)
#define iopf_rcu_offline() ((void)0)
#define iopf_rcu_quiescent() ((void)0)
#define iopf_rcu_synchronize() urcu_memb_synchronize_rcu()
#define iopf_rcu_synchronize_raw() urcu_memb_synchronize_rcu()
#define iopf_rcu_call(head, fn) urcu_memb_call_rcu((head), (fn))
#define iopf_rcu_call_raw(head, fn) urcu_memb_call_rcu((head), (fn))
#define iopf_rcu_barrier() urcu_memb_barrier()
#endif

#include <urcu/compiler.h>
#include <urcu/pointer.h>
#include <urcu/rculfhash.h>

/*
 * ThreadSanitizer cannot see grace periods: liburcu is not instrumented and
 * its writers wait through membarrier and futexes. Model the guarantee RCU
 * gives instead: everything a reader did before leaving its read-side
 * section happens before anything done after a grace period (in call_rcu
 * callbacks and after iopf_rcu_synchronize()).
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
extern char iopf_rcu_tsan_gp;
#define IOPF_RCU_AFTER_GP() __tsan_acquire(&iopf_rcu_tsan_gp)
static inline void iopf_rcu_read_unlock_annotated(void) {
	__tsan_release(&iopf_rcu_tsan_gp);
	iopf_rcu_read_unlock_raw();
}
static inline void iopf_rcu_synchronize_annotated(void) {
	iopf_rcu_synchronize_raw();
	IOPF_RCU_AFTER_GP();
}
/* What the retiring thread did before call_rcu happens before the callback. */
#define IOPF_RCU_CALL_ANNOTATED(head, fn) (__tsan_release(&iopf_rcu_tsan_gp), iopf_rcu_call_raw(head, fn))
#undef iopf_rcu_call
#define iopf_rcu_call(head, fn) IOPF_RCU_CALL_ANNOTATED(head, fn)
#undef iopf_rcu_read_unlock
#define iopf_rcu_read_unlock() iopf_rcu_read_unlock_annotated()
#undef iopf_rcu_synchronize
#define iopf_rcu_synchronize() iopf_rcu_synchronize_annotated()
/* Objects published through liburcu-cds (uninstrumented, like the call_rcu
 * queue): the writer's initialization happens before a reader's use. */
#define IOPF_TSAN_PUBLISH(p) __tsan_release(p)
#define IOPF_TSAN_CONSUME(p) __tsan_acquire(p)
#else
#define IOPF_RCU_AFTER_GP() ((void)0)
#define IOPF_TSAN_PUBLISH(p) ((void)0)
#define IOPF_TSAN_CONSUME(p) ((void)0)
#endif
