/*
 * Linked into the agent by packaging/build-agent in place of zig's libunwind (see
 * packaging/README.md, "Size"): ~30 KB on mips_24kc for two entry points nothing calls.
 *
 * The agent is built with panic=abort and std without its `backtrace` feature, so nothing ever
 * unwinds and std's panic hook never prints a backtrace (std::panic::get_backtrace_style() is a
 * constant None there). std still links its frame walker (`_print_fmt`, reached only from that
 * dead branch), whose two libunwind calls are these. If one ever ran, it would find no frame.
 * build-agent leaves libunwind in when AGENT_STD_FEATURES asks for `backtrace` or
 * `panic-unwind`; a link that needed any other unwinder symbol would fail, not misbehave.
 */
typedef int (*routerstats_trace_fn)(void *context, void *arg);

/* _URC_END_OF_STACK: no frames. */
int _Unwind_Backtrace(routerstats_trace_fn trace, void *arg)
{
	(void)trace;
	(void)arg;
	return 5;
}

unsigned long _Unwind_GetIP(void *context)
{
	(void)context;
	return 0;
}
