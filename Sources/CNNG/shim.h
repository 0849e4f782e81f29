// nng 1.5.x: nng.h alone does not declare the protocol constructors.
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/util/platform.h>
// nng allocates messages with malloc; MessageMemory tunes glibc's thresholds (mallopt).
#include <malloc.h>
