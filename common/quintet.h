/*  quintet: the project header. Every daemon, tool and test includes this one
    header; it pulls in the dependencies and every class of libquintet.
*/
#ifndef QUINTET_H_INCLUDED
#define QUINTET_H_INCLUDED

#include <czmq.h>
#include <sodium.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <inttypes.h>

#include "quintet.pb-c.h"

#include "qt_rng.h"
#include "qt_robust.h"
#include "qt_tournesol.h"
#include "qt_options.h"
#include "qt_log.h"
#include "qt_notify.h"
#include "qt_config.h"
#include "qt_store.h"
#include "qt_keys.h"
#include "qt_payload.h"
#include "qt_agree.h"
#include "qt_envelope.h"
#include "qt_transport.h"
#include "qt_quorum.h"
#include "qt_metrics.h"
#include "qt_topology.h"
#include "qt_stage_status.h"
#include "qt_stage.h"
#include "qt_daemon.h"
#include "qt_byzantine.h"
#include "qt_control.h"
#include "qt_catchup.h"
#include "qt_reputation.h"
#include "qt_codec.h"

#endif
