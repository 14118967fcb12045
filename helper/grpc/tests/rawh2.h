/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A deliberately misbehaving HTTP/2 "gRPC server" for the tests: it
 * speaks just enough HTTP/2 by hand (HPACK literals, no Huffman) to send
 * whatever frames a scenario needs. The scenario is the request message
 * itself, e.g. "rst-mid", "echo:hello", "freeze", "pinged:1500",
 * "trickle:20:100" (20 messages 100 ms apart) or "stall-after:2" (2
 * messages, then 5 s of silence with PINGs answered).
 */
#ifndef CASFS_GRPC_RAWH2_H
#define CASFS_GRPC_RAWH2_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

struct rawsrv {
	int lfd, port;
	pthread_t th;
	bool mute;		/* accept, read, never answer (not even SETTINGS) */
	atomic_bool stop;
	atomic_int conns;	/* connections accepted */
	atomic_int serving;	/* connection threads running */
	atomic_int requests;
	atomic_int rst_seen;	/* RST_STREAM frames from the client */
	atomic_int once;	/* for the "-once" scenarios */
	atomic_int max_concurrent; /* announced in SETTINGS (0: none) */
	/* Set by the "freeze" scenario: connections neither read nor
	 * write (a stopped process; the kernel still ACKs TCP). */
	atomic_bool frozen;
	atomic_int pings;	/* PING frames from the client */
};

int rawsrv_start(struct rawsrv *s, bool mute);
void rawsrv_stop(struct rawsrv *s);

#endif
