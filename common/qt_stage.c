/*  qt_stage: a stage from its config (keys, trust store, sockets, quorums,
    reputation, catch-up), publishing and re-sending, the receive path,
    processing ready ticks, health and the status snapshot. The actor's
    loop is qt_stage_loop.c, the control channel qt_stage_control.c,
    /metrics qt_stage_metrics.c.
*/
#include "qt_stage_internal.h"
#include "qt_daemon.h"

static const char *const s_log_levels [] = { "error", "warning", "notice", "info", "debug", NULL };
static const int s_log_priorities [] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

uint32_t qt_stage_replica (qt_stage_t *self) { return self->replica; }
size_t qt_stage_batch (qt_stage_t *self) { return self->batch; }
uint64_t qt_stage_seed (qt_stage_t *self) { return self->seed; }
const char *qt_stage_env (qt_stage_t *self) { return self->env; }
const char *qt_stage_env_variant (qt_stage_t *self) { return self->env_variant; }
const char *qt_stage_env_without (qt_stage_t *self) { return self->env_without; }
const char *qt_stage_state_dir (qt_stage_t *self) { return self->state_dir; }
qt_verifier_t *qt_stage_verifier (qt_stage_t *self) { return self->verifier; }
qt_trust_t *qt_stage_trust (qt_stage_t *self) { return self->trust; }
qt_metrics_t *qt_stage_metrics (qt_stage_t *self) { return self->metrics; }

qt_quorum_t *
qt_stage_quorum (qt_stage_t *self, size_t upstream)
{
    return upstream < self->role->upstreams ? self->quorum [upstream] : NULL;
}

static bool
s_is_replica_name (const char *name)
{
    if (!*name)
        return false;
    for (const char *c = name; *c; c++)
        if (!isdigit ((unsigned char) *c))
            return false;
    return true;
}

static void
s_error_in_key (qt_config_t *config, const char *key, char **error);

//  A SUB socket for one upstream replica's endpoint, subscribed to its topic
//  Agreement of two upstream replicas' messages of one tick (qt_agree): the
//  same payload bytes, or the same payload but for its replica-specific fields
static bool
s_agree (void *ctx, const qt_message_t *a, const qt_message_t *b)
{
    (void) ctx;
    const ProtobufCBinaryData *x = &a->envelope->payload, *y = &b->envelope->payload;
    if (x->len == y->len && (x->len == 0 || memcmp (x->data, y->data, x->len) == 0))
        return true;
    return qt_agree_payloads (a->payload, b->payload);
}

static int
s_connect_endpoint (qt_stage_t *self, size_t upstream, uint32_t replica, const char *endpoint,
                    char **error)
{
    if (self->subs == QT_STAGE_MAX_ENDPOINTS) {
        *error = zsys_sprintf ("more than %d upstream endpoints", QT_STAGE_MAX_ENDPOINTS);
        return -1;
    }
    const char *endpoints [] = { endpoint, NULL };
    const char *topics [] = { self->role->upstream [upstream].topic, NULL };
    zsock_t *sub = qt_transport_subscriber (endpoints, topics, (int64_t) QT_MESSAGE_SIZE_CAP * 2, error);
    if (!sub)
        return -1;
    qt_stage_endpoint_t *slot = &self->sub [self->subs++];
    slot->sub = sub;
    slot->upstream = upstream;
    slot->replica = replica;
    slot->budget.tokens = QT_STAGE_ENDPOINT_BURST;
    slot->budget.refilled_ms = zclock_mono ();
    return 0;
}

//  Reads upstream/<role>: quorum parameters and replica endpoints. The
//  endpoints are also connected on the SUB socket (checked only, without
//  one: --check).
static int
s_configure_upstream (qt_stage_t *self, size_t index, char **error)
{
    const char *up_role = self->role->upstream [index].role;
    char *base = zsys_sprintf ("quintet/upstream/%s", up_role);
    char *key = zsys_sprintf ("%s/faults", base);
    uint64_t faults = 0, deadline_ms = 0, down_after = 0, agree_ms = 0;
    int rc = qt_config_uint (self->config, key, false, 0, 0, QT_QUORUM_MAX_REPLICAS, &faults);
    zstr_free (&key);
    key = zsys_sprintf ("%s/deadline_ms", base);
    rc |= qt_config_uint (self->config, key, false, QT_STAGE_DEADLINE_MS, 1, 600000, &deadline_ms);
    zstr_free (&key);
    key = zsys_sprintf ("%s/down_after", base);
    rc |= qt_config_uint (self->config, key, false, QT_STAGE_DOWN_AFTER, 1, 1000000, &down_after);
    zstr_free (&key);
    key = zsys_sprintf ("%s/agree_ms", base);
    rc |= qt_config_uint (self->config, key, false, QT_STAGE_AGREE_MS, 0, 600000, &agree_ms);
    zstr_free (&key);
    if (rc) {
        *error = strdup (qt_config_error (self->config));
        zstr_free (&base);
        return -1;
    }
    //  Endpoints: children named by replica id, 1..n without gaps
    zlist_t *children = qt_config_children (self->config, base);
    uint32_t replicas = 0;
    uint32_t max_id = 0;
    for (char *name = (char *) zlist_first (children); name; name = (char *) zlist_next (children)) {
        if (!s_is_replica_name (name))
            continue;       //  faults, deadline_ms, down_after, agree_ms, or unknown: caught below
        key = zsys_sprintf ("%s/%s", base, name);
        const char *endpoint = NULL;
        rc = qt_config_string (self->config, key, NULL, &endpoint);
        unsigned long id = strtoul (name, NULL, 10);
        if (rc == 0 && (id < 1 || id > QT_QUORUM_MAX_REPLICAS)) {
            *error = zsys_sprintf ("%s: %s/%s: replica ids are 1..%d",
                                   qt_config_path (self->config), base, name, QT_QUORUM_MAX_REPLICAS);
            rc = -1;
        }
        else
        if (rc)
            *error = strdup (qt_config_error (self->config));
        else {
            //  --check connects nothing: the endpoint's form is all it judges
            rc = self->check ? qt_transport_check_endpoint (endpoint, error)
                             : s_connect_endpoint (self, index, (uint32_t) id, endpoint, error);
            if (rc)
                s_error_in_key (self->config, key, error);
        }
        zstr_free (&key);
        if (rc) {
            zlist_destroy (&children);
            zstr_free (&base);
            return -1;
        }
        replicas++;
        if (id > max_id)
            max_id = (uint32_t) id;
    }
    zlist_destroy (&children);
    if (replicas == 0 || max_id != replicas) {
        *error = zsys_sprintf ("%s: %s: expected endpoints named 1..n (one per %s replica), found %u",
                               qt_config_path (self->config), base, up_role, replicas);
        zstr_free (&base);
        return -1;
    }
    self->quorum [index] = qt_quorum_new (up_role, replicas, (uint32_t) faults,
                                          (int64_t) deadline_ms, (uint32_t) down_after);
    if (!self->quorum [index]) {
        *error = zsys_sprintf ("%s: %s/faults: %u replicas cannot tolerate %u faults (n >= 2f+1)",
                               qt_config_path (self->config), base, replicas, (unsigned) faults);
        zstr_free (&base);
        return -1;
    }
    if (agree_ms > 0 && faults > 0)
        qt_quorum_set_agreement (self->quorum [index], s_agree, NULL, (int64_t) agree_ms);
    self->reputation [index] = qt_reputation_new (up_role, replicas, (uint32_t) faults);
    for (uint32_t r = 0; r < QT_QUORUM_MAX_REPLICAS; r++)
        self->weight [index][r] = 1;
    zstr_free (&base);
    return 0;
}

//  qt_catchup's view of the stage
static int
s_catchup_snapshot (void *ctx, zchunk_t *out)
{
    qt_stage_t *self = (qt_stage_t *) ctx;
    return self->role->snapshot (self->state, out);
}

static int
s_catchup_restore (void *ctx, const uint8_t *data, size_t size, const char **cause)
{
    qt_stage_t *self = (qt_stage_t *) ctx;
    return self->role->restore (self->state, data, size, cause);
}

static int
s_catchup_replay (void *ctx, uint64_t tick, qt_message_t **inputs [],
                  double weights [][QT_QUORUM_MAX_REPLICAS])
{
    qt_stage_t *self = (qt_stage_t *) ctx;
    for (size_t u = 0; u < self->role->upstreams; u++)
        memcpy (self->weight [u], weights [u], sizeof self->weight [u]);
    self->replaying = true;
    int rc = self->role->process (self->state, self, tick, inputs);
    self->replaying = false;
    return rc;
}

//  quintet/peers/<replica> = the control endpoints of this role's replicas
//  (this one's may be listed too), and quintet/catch_up (default true). A
//  role without state (no snapshot hooks) has nothing to catch up: the
//  keys are checked, and unused. f is what n = peers + 1 tolerates.
static int
s_configure_catchup (qt_stage_t *self, char **error)
{
    bool catch_up = true;
    if (qt_config_bool (self->config, "quintet/catch_up", false, true, &catch_up)) {
        *error = strdup (qt_config_error (self->config));
        return -1;
    }
    const char *endpoints [QT_QUORUM_MAX_REPLICAS + 1] = { NULL };
    uint32_t peers = 0;
    zlist_t *children = qt_config_children (self->config, "quintet/peers");
    int rc = 0;
    for (char *name = (char *) zlist_first (children); name && rc == 0;
         name = (char *) zlist_next (children)) {
        char *key = zsys_sprintf ("quintet/peers/%s", name);
        unsigned long id = s_is_replica_name (name) ? strtoul (name, NULL, 10) : 0;
        const char *endpoint = NULL;
        if (id < 1 || id > QT_QUORUM_MAX_REPLICAS) {
            *error = zsys_sprintf ("%s: %s: peers are named by replica id, 1..%d",
                                   qt_config_path (self->config), key, QT_QUORUM_MAX_REPLICAS);
            rc = -1;
        }
        else
        if (qt_config_string (self->config, key, NULL, &endpoint)) {
            *error = strdup (qt_config_error (self->config));
            rc = -1;
        }
        else
        if (qt_transport_check_endpoint (endpoint, error)) {
            s_error_in_key (self->config, key, error);
            rc = -1;
        }
        else
        if (id != self->replica) {
            endpoints [id] = endpoint;
            peers++;
        }
        zstr_free (&key);
    }
    zlist_destroy (&children);
    if (rc || self->check || !self->role->snapshot || !self->role->restore)
        return rc;
    qt_catchup_ops_t ops = { self, s_catchup_snapshot, s_catchup_restore, s_catchup_replay };
    self->catchup = qt_catchup_new (self->role->role, self->replica, peers / 2, catch_up && peers > 0,
                                    self->signer, self->trust, self->role->upstreams, &ops);
    for (uint32_t id = 1; id <= QT_QUORUM_MAX_REPLICAS && rc == 0; id++)
        if (endpoints [id] && qt_catchup_add_peer (self->catchup, id, endpoints [id], error)) {
            char *key = zsys_sprintf ("quintet/peers/%u", id);
            s_error_in_key (self->config, key, error);
            zstr_free (&key);
            rc = -1;
        }
    return rc;
}

//  Prefixes an error about a file a key names with the config file and key,
//  so that the one message says where to look
static void
s_error_in_key (qt_config_t *config, const char *key, char **error)
{
    char *detail = *error;
    *error = zsys_sprintf ("%s: %s: %s", qt_config_path (config), key,
                           detail ? detail : "cannot be loaded");
    zstr_free (&detail);
}

//  The secret key must be the one the trust store holds as
//  <role>-<replica>.pub: else every message it signs is dropped downstream
//  (unknown-key, or wrong-role when it is another replica's)
static int
s_check_own_key (qt_stage_t *self, const qt_keypair_t *keypair, const char *trust_dir,
                 char **error)
{
    const qt_trust_entry_t *entry = qt_trust_lookup (self->trust, keypair->key_id);
    if (!entry)
        *error = zsys_sprintf ("its public key (key id %s) is not in the trust store %s: "
                               "%s/%s-%u.pub is missing or holds another key",
                               keypair->key_id, trust_dir, trust_dir, keypair->role, keypair->replica);
    else
    if (strneq (entry->role, keypair->role) || entry->replica != keypair->replica)
        *error = zsys_sprintf ("it is the key of %s-%u in the trust store %s, not of %s-%u",
                               entry->role, entry->replica, trust_dir, keypair->role, keypair->replica);
    else
    if (sodium_memcmp (entry->public_key, keypair->public_key, sizeof entry->public_key) != 0)
        *error = zsys_sprintf ("its public key does not match %s/%s-%u.pub", trust_dir,
                               keypair->role, keypair->replica);
    return *error ? -1 : 0;
}

static void
s_allowance_destroy (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

int
qt_stage_role_fill (const qt_role_t *descriptor, qt_role_t *filled)
{
    //  What the role publishes and consumes is the topology's, not its own
    const qt_topology_role_t *topology = qt_topology_role (descriptor->role);
    if (!topology)
        return -1;
    *filled = *descriptor;
    filled->topic = topology->topic;
    filled->type = topology->type;
    filled->upstreams = topology->upstreams;
    for (size_t u = 0; u < topology->upstreams; u++)
        filled->upstream [u] = topology->upstream [u];
    return 0;
}

//  Everything common to all roles, from config to bound sockets. check
//  (--check): validate everything, bind and connect nothing, so that it
//  runs beside the replica the config belongs to. On error, returns what
//  it built with *error set: the caller destroys.
static qt_stage_t *
s_stage_new (const qt_role_t *descriptor, qt_config_t *config, const qt_stage_options_t *options,
             char **error)
{
    qt_stage_t *self = (qt_stage_t *) zmalloc (sizeof (qt_stage_t));
    if (options)
        self->options = *options;
    bool check = self->options.check;
    if (descriptor->topic)
        self->filled = *descriptor;
    else
    if (qt_stage_role_fill (descriptor, &self->filled)) {
        *error = zsys_sprintf ("role \"%s\" is not in the topology (common/topology.txt)",
                               descriptor->role);
        free (self);
        return NULL;
    }
    const qt_role_t *role = self->role = &self->filled;
    self->config = config;
    self->check = check;
    self->watchdog_usec = self->options.watchdog_usec;
    const char *role_name = NULL, *secret = NULL, *trust_dir = NULL, *bind = NULL;
    const char *state_dir = NULL;
    uint64_t replica = 0, batch = 0, resend_ms = 0, status_ms = 0;
    int level = 0;
    int rc = qt_config_string (config, "quintet/role", NULL, &role_name);
    if (rc == 0 && strneq (role_name, role->role)) {
        *error = zsys_sprintf ("%s: quintet/role: this is quintet-%s, the file configures \"%s\"",
                               qt_config_path (config), role->role, role_name);
        free (self);
        return NULL;
    }
    rc |= qt_config_uint (config, "quintet/replica", true, 0, 1, QT_QUORUM_MAX_REPLICAS, &replica);
    rc |= qt_config_uint (config, "quintet/batch", true, 0, 1, QT_STAGE_BATCH_MAX, &batch);
    rc |= qt_config_uint (config, "quintet/seed", false, 1, 0, UINT64_MAX, &self->seed);
    rc |= qt_config_string (config, "quintet/env", "", &self->env);
    rc |= qt_config_string (config, "quintet/env_variant", "", &self->env_variant);
    rc |= qt_config_string (config, "quintet/env_without", "", &self->env_without);
    rc |= qt_config_string (config, "quintet/secret_key", NULL, &secret);
    rc |= qt_config_string (config, "quintet/trust_dir", NULL, &trust_dir);
    rc |= qt_config_string (config, "quintet/state_dir", "", &state_dir);
    rc |= qt_config_string (config, "quintet/bind", NULL, &bind);
    rc |= qt_config_uint (config, "quintet/resend_ms", false, QT_STAGE_RESEND_MS, 10, 600000, &resend_ms);
    rc |= qt_config_uint (config, "quintet/status_ms", false, QT_STAGE_STATUS_MS, 10, 600000, &status_ms);
    rc |= qt_config_choice (config, "quintet/log_level", s_log_levels, "info", &level);
    const char *metrics_bind = NULL;
    rc |= qt_config_string (config, "quintet/metrics_bind", "", &metrics_bind);
    if (rc) {
        *error = strdup (qt_config_error (config));
        free (self);
        return NULL;
    }
    self->replica = (uint32_t) replica;
    self->batch = (size_t) batch;
    self->resend_ms = (int64_t) resend_ms;
    self->status_ms = (int64_t) status_ms;
    qt_log_init (role->role, self->replica);
    qt_log_set_level (self->options.verbose ? LOG_DEBUG : s_log_priorities [level]);
    if (!*state_dir && role->state_for) {
        *error = zsys_sprintf ("%s: quintet/state_dir: required by the %s (%s)",
                               qt_config_path (config), role->role, role->state_for);
        free (self);
        return NULL;
    }
    if (*state_dir) {
        if (qt_daemon_mkdir_p (state_dir)) {
            *error = zsys_sprintf ("%s: quintet/state_dir: cannot create %s: %s",
                                   qt_config_path (config), state_dir, strerror (errno));
            free (self);
            return NULL;
        }
        self->state_dir = strdup (state_dir);
    }
    self->drop_log = qt_ratelimit_new (QT_STAGE_DROP_LOG_MS);
    qt_stage_metrics_new (self);

    char *secret_path = qt_daemon_secret_path (secret);
    qt_keypair_t *keypair = qt_keypair_load (secret_path, role->role, self->replica, error);
    zstr_free (&secret_path);
    if (!keypair) {
        s_error_in_key (config, "quintet/secret_key", error);
        return self;        //  the caller sees *error and destroys
    }
    self->trust = qt_trust_load (trust_dir, error);
    if (!self->trust) {
        qt_keypair_destroy (&keypair);
        s_error_in_key (config, "quintet/trust_dir", error);
        return self;
    }
    if (s_check_own_key (self, keypair, trust_dir, error)) {
        qt_keypair_destroy (&keypair);
        s_error_in_key (config, "quintet/secret_key", error);
        return self;
    }
    self->signer = qt_signer_new (&keypair);
    self->verifier = qt_verifier_new (self->trust, self->batch);

    const char *control_bind = NULL;
    if (qt_config_string (config, "quintet/control_bind", "", &control_bind)) {
        *error = strdup (qt_config_error (config));
        return self;
    }
    if (check) {
        if (qt_transport_check_endpoint (bind, error))
            s_error_in_key (config, "quintet/bind", error);
        else
        if (*control_bind && qt_transport_check_endpoint (control_bind, error))
            s_error_in_key (config, "quintet/control_bind", error);
        else
        if (*metrics_bind && qt_metrics_check_bind (metrics_bind, error))
            s_error_in_key (config, "quintet/metrics_bind", error);
        for (size_t i = 0; i < role->upstreams && !*error; i++)
            s_configure_upstream (self, i, error);
        if (!*error)
            s_configure_catchup (self, error);
        return self;
    }
    self->pub = qt_transport_publisher (bind, &self->endpoint, error);
    if (!self->pub) {
        s_error_in_key (config, "quintet/bind", error);
        return self;
    }
    if (*metrics_bind) {
        if (qt_metrics_serve (self->metrics, metrics_bind, error)) {
            char *detail = *error;
            *error = zsys_sprintf ("%s: quintet/metrics_bind: %s", qt_config_path (config), detail);
            zstr_free (&detail);
            return self;
        }
        qt_log (LOG_INFO, "metrics on http://%s/metrics (port %u)", metrics_bind,
                (unsigned) qt_metrics_port (self->metrics));
    }
    if (*control_bind) {
        self->control = zsock_new (ZMQ_ROUTER);
        assert (self->control);
        zsock_set_linger (self->control, 0);
        zsock_set_maxmsgsize (self->control, QT_MESSAGE_SIZE_CAP);
        if (zsock_bind (self->control, "%s", control_bind) == -1) {
            *error = zsys_sprintf ("%s: quintet/control_bind: cannot bind %s: %s",
                                   qt_config_path (config), control_bind, zmq_strerror (zmq_errno ()));
            return self;
        }
        self->control_verifier = qt_control_verifier_new (self->trust);
        self->control_peers = zhashx_new ();
        zhashx_set_destructor (self->control_peers, s_allowance_destroy);
    }
    for (size_t i = 0; i < role->upstreams && !*error; i++)
        s_configure_upstream (self, i, error);
    if (!*error)
        s_configure_catchup (self, error);
    return self;
}

qt_stage_t *
qt_stage_new (const qt_role_t *descriptor, qt_config_t *config, const qt_stage_options_t *options,
              char **error)
{
    *error = NULL;
    qt_stage_t *self = s_stage_new (descriptor, config, options, error);
    if (self && !*error) {
        self->state = self->role->create (self, config, error);
        if (!self->state && !*error)
            *error = zsys_sprintf ("%s: quintet/%s: invalid role configuration",
                                   qt_config_path (config), self->role->role);
    }
    if (!*error && qt_config_check_unknown (config))
        *error = strdup (qt_config_error (config));
    if (!*error && self->options.byzantine != QT_BYZANTINE_HONEST) {
        //  wrong-role signs with another role's key from the same key directory
        const char *secret = NULL;
        qt_config_string (config, "quintet/secret_key", NULL, &secret);
        char *key_dir = secret ? qt_daemon_secret_path (secret) : NULL;
        char *slash = key_dir ? strrchr (key_dir, '/') : NULL;
        if (slash)
            *slash = 0;
        self->byzantine = qt_byzantine_new (self->options.byzantine, self->seed, self->role->role,
                                            self->replica, slash ? key_dir : ".");
        zstr_free (&key_dir);
        qt_log (LOG_WARNING, "BYZANTINE replica: publishing in mode %s",
                qt_byzantine_mode_name (self->options.byzantine));
    }
    if (*error)
        qt_stage_destroy (&self);
    return self;
}

const char *qt_stage_endpoint (qt_stage_t *self) { return self->endpoint; }
int qt_stage_result (qt_stage_t *self) { return self->rc; }

void
qt_stage_destroy (qt_stage_t **self_p)
{
    qt_stage_t *self = *self_p;
    if (!self)
        return;
    if (self->state && self->role->destroy)
        self->role->destroy (&self->state);
    for (size_t i = 0; i < QT_STAGE_MAX_UPSTREAMS; i++) {
        qt_quorum_destroy (&self->quorum [i]);
        qt_reputation_destroy (&self->reputation [i]);
    }
    for (size_t k = 0; k < self->subs; k++)
        zsock_destroy (&self->sub [k].sub);
    zsock_destroy (&self->pub);
    zstr_free (&self->endpoint);
    qt_verifier_destroy (&self->verifier);
    qt_trust_destroy (&self->trust);
    qt_signer_destroy (&self->signer);
    qt_ratelimit_destroy (&self->drop_log);
    zsock_destroy (&self->control);
    qt_verifier_destroy (&self->control_verifier);
    zhashx_destroy (&self->control_peers);
    qt_catchup_destroy (&self->catchup);
    qt_metrics_destroy (&self->metrics);
    qt_byzantine_destroy (&self->byzantine);
    free (self->last_payload);
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT; k++) {
        free (self->kept [k].topic);
        free (self->kept [k].payload);
    }
    free (self->state_dir);
    free (self);
    *self_p = NULL;
}

static int
s_send_sealed (qt_stage_t *self, const char *topic, zframe_t *frame)
{
    if (qt_transport_send (self->pub, topic, &frame)) {
        qt_log (LOG_WARNING, "publish on %s failed: %s", topic, zmq_strerror (zmq_errno ()));
        return -1;
    }
    self->published++;
    return 0;
}

//  A Byzantine replica publishes its lie (qt_byzantine); the lie is also
//  what it re-sends
static int
s_publish_byzantine (qt_stage_t *self, uint64_t tick, const ProtobufCMessage *payload)
{
    size_t size = 0;
    free (self->last_payload);
    self->last_payload = qt_byzantine_payload (self->byzantine, payload, &size);
    self->last_size = size;
    self->last_tick = tick;
    self->have_last = true;
    zframe_t *frame = qt_byzantine_seal (self->byzantine, self->signer, self->role->type, tick,
                                         self->last_payload, size);
    return frame ? s_send_sealed (self, self->role->topic, frame) : 0;
}

int
qt_stage_publish (qt_stage_t *self, uint64_t tick, const ProtobufCMessage *payload)
{
    if (self->replaying)
        return 0;       //  a kept tick processed again (qt_catchup): published long ago
    self->publish_calls++;
    if (self->degraded) {
        self->degraded = false;
        qt_log (LOG_NOTICE, "tick %" PRIu64 " published: no longer degraded", tick);
    }
    qt_metric_set (self->metric [M_LAST_TICK], NULL, (double) tick);
    if (self->byzantine)
        return s_publish_byzantine (self, tick, payload);
    size_t size = protobuf_c_message_get_packed_size (payload);
    uint8_t *bytes = (uint8_t *) malloc (size ? size : 1);
    assert (bytes);
    protobuf_c_message_pack (payload, bytes);
    free (self->last_payload);
    self->last_payload = bytes;
    self->last_size = size;
    self->last_tick = tick;
    self->have_last = true;
    zframe_t *frame = qt_signer_seal_bytes (self->signer, self->role->type, tick, bytes, size);
    return s_send_sealed (self, self->role->topic, frame);
}

void
qt_stage_tick_failed (qt_stage_t *self, uint64_t tick, const char *cause, const char *fmt, ...)
{
    char what [QT_STAGE_STATE_SIZE];
    if (self->replaying)
        return;
    va_list args;
    va_start (args, fmt);
    vsnprintf (what, sizeof what, fmt, args);
    va_end (args);
    self->tick_failed = true;
    self->degraded = true;
    self->tick_failures++;
    snprintf (self->degraded_state, sizeof self->degraded_state, "degraded, %s failing", cause);
    qt_metric_add (self->metric [M_TICK_FAILURES], cause, 1);
    char key [64];
    snprintf (key, sizeof key, "tick-failed/%s", cause);
    uint64_t suppressed = 0;
    if (qt_ratelimit_pass (self->drop_log, key, zclock_mono (), &suppressed))
        qt_log_event (LOG_ERR, NULL, tick, NULL, cause, "%s (%" PRIu64 " more failures since last report)",
                      what, suppressed);
}

int
qt_stage_publish_on (qt_stage_t *self, const char *topic, Quintet__PayloadType type,
                     uint64_t tick, const ProtobufCMessage *payload)
{
    if (self->replaying)
        return 0;
    zframe_t *frame = qt_signer_seal (self->signer, type, tick, payload);
    return s_send_sealed (self, topic, frame);
}

int
qt_stage_publish_kept (qt_stage_t *self, const char *topic, Quintet__PayloadType type,
                       uint64_t tick, const ProtobufCMessage *payload)
{
    if (self->replaying)
        return 0;
    qt_stage_kept_t *slot = NULL;
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT && !slot; k++)
        if (self->kept [k].topic && streq (self->kept [k].topic, topic))
            slot = &self->kept [k];
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT && !slot; k++)
        if (!self->kept [k].topic) {
            slot = &self->kept [k];
            slot->topic = strdup (topic);
        }
    if (!slot) {
        qt_log (LOG_ERR, "cannot keep topic %s: %d kept topics at most", topic, QT_STAGE_MAX_KEPT);
        return -1;
    }
    size_t size = protobuf_c_message_get_packed_size (payload);
    uint8_t *bytes = (uint8_t *) malloc (size ? size : 1);
    assert (bytes);
    protobuf_c_message_pack (payload, bytes);
    free (slot->payload);
    slot->payload = bytes;
    slot->size = size;
    slot->type = type;
    slot->tick = tick;
    zframe_t *frame = qt_signer_seal_bytes (self->signer, type, tick, bytes, size);
    return s_send_sealed (self, topic, frame);
}

//  While nothing progresses: the last output and every kept topic's last
//  message again (a degraded stage's are old news: nothing)
void
qt_stage_resend (qt_stage_t *self, int64_t now_ms)
{
    if (self->degraded)
        return;
    if (self->have_last) {
        zframe_t *frame = self->byzantine
            ? qt_byzantine_seal (self->byzantine, self->signer, self->role->type,
                                 self->last_tick, self->last_payload, self->last_size)
            : qt_signer_seal_bytes (self->signer, self->role->type,
                                    self->last_tick, self->last_payload,
                                    self->last_size);
        if (frame)
            s_send_sealed (self, self->role->topic, frame);
        self->resends++;
        qt_log (LOG_DEBUG, "no progress for %" PRId64 " ms: re-sent tick %" PRIu64,
                now_ms - self->last_progress_ms, self->last_tick);
    }
    for (size_t k = 0; k < QT_STAGE_MAX_KEPT; k++) {
        qt_stage_kept_t *kept = &self->kept [k];
        if (!kept->payload)
            continue;
        zframe_t *frame = qt_signer_seal_bytes (self->signer, kept->type, kept->tick,
                                                kept->payload, kept->size);
        s_send_sealed (self, kept->topic, frame);
    }
}

const char *
qt_stage_message_id (qt_drop_cause_t cause)
{
    if (cause == QT_DROP_BAD_SIGNATURE || cause == QT_DROP_UNKNOWN_KEY || cause == QT_DROP_WRONG_ROLE)
        return QT_MSG_SIGNATURE_REJECTED;
    if (cause == QT_DROP_REPLAY)
        return QT_MSG_REPLAY_DROPPED;
    return QT_MSG_MESSAGE_DROPPED;
}

static void
s_log_drop (qt_stage_t *self, qt_drop_cause_t cause, const char *topic, const char *peer,
            uint64_t tick, int64_t now_ms)
{
    uint64_t suppressed = 0;
    const char *name = qt_drop_cause_name (cause);
    if (qt_ratelimit_pass (self->drop_log, name, now_ms, &suppressed))
        qt_log_event (LOG_WARNING, qt_stage_message_id (cause), tick, peer, name,
                      "dropped a message on %s: %s (%" PRIu64 " more of this cause since last report)",
                      topic, name, suppressed);
}

//  One message from an upstream endpoint through the receive path into a
//  quorum
void
qt_stage_receive (qt_stage_t *self, qt_stage_endpoint_t *from, int64_t now_ms)
{
    char *topic = NULL;
    zframe_t *frame = NULL;
    if (qt_transport_recv (from->sub, &topic, &frame)) {
        qt_verifier_count (self->verifier, QT_DROP_MALFORMED);
        s_log_drop (self, QT_DROP_MALFORMED, "?", NULL, UINT64_MAX, now_ms);
        return;
    }
    size_t index = from->upstream;
    const char *up_role = self->role->upstream [index].role;
    if (strneq (topic, self->role->upstream [index].topic)) {
        //  A topic we never subscribed to exactly (a longer topic with our prefix)
        qt_verifier_count (self->verifier, QT_DROP_WRONG_TYPE);
        s_log_drop (self, QT_DROP_WRONG_TYPE, topic, NULL, UINT64_MAX, now_ms);
        zstr_free (&topic);
        zframe_destroy (&frame);
        return;
    }
    qt_drop_cause_t cause = QT_DROP_NONE;
    qt_message_t *message = qt_verifier_open_from (self->verifier, topic, up_role, from->replica,
                                                   zframe_data (frame), zframe_size (frame), &cause);
    zframe_destroy (&frame);
    if (message && self->role->validate) {
        cause = self->role->validate (self->state, index, message->payload);
        if (cause != QT_DROP_NONE) {
            qt_verifier_count (self->verifier, cause);
            qt_message_destroy (&message);
        }
    }
    if (!message) {
        s_log_drop (self, cause, topic, NULL, UINT64_MAX, now_ms);
        zstr_free (&topic);
        return;
    }
    uint32_t replica = message->sender->replica;
    uint64_t tick = message->envelope->tick;
    if (replica >= 1 && replica <= QT_QUORUM_MAX_REPLICAS) {
        self->heard_ms [index][replica - 1] = now_ms;
        uint64_t *epoch = &self->epoch [index][replica - 1];
        if (*epoch != message->envelope->epoch) {
            if (*epoch != 0)
                qt_reputation_restarted (self->reputation [index], replica);
            *epoch = message->envelope->epoch;
        }
    }
    qt_quorum_result_t result = qt_quorum_add (self->quorum [index], replica, tick, &message, now_ms);
    if (result == QT_QUORUM_UNKNOWN_REPLICA || result == QT_QUORUM_STALE) {
        cause = result == QT_QUORUM_STALE ? QT_DROP_STALE : QT_DROP_UNEXPECTED;
        qt_verifier_count (self->verifier, cause);
        char *peer = zsys_sprintf ("%s-%u", self->role->upstream [index].role, replica);
        s_log_drop (self, cause, topic, peer, tick, now_ms);
        zstr_free (&peer);
    }
    qt_message_destroy (&message);      //  still ours unless the quorum took it
    zstr_free (&topic);
}

//  This tick's weights per replica of one upstream (qt_reputation_weights:
//  never fewer than n - f of the present ones used); distances start unreported
static void
s_reputation_weights (qt_stage_t *self, size_t upstream, qt_message_t **slots)
{
    uint32_t replicas = qt_quorum_replicas (self->quorum [upstream]);
    bool present [QT_QUORUM_MAX_REPLICAS];
    for (uint32_t r = 0; r < replicas; r++) {
        present [r] = slots [r] != NULL;
        self->distance [upstream][r] = NAN;
    }
    qt_reputation_weights (self->reputation [upstream], present, self->weight [upstream]);
}

//  Agreement
//  ---------
//  f + 1 replicas that sent the same input (qt_quorum_agreement) sent an
//  honest one. Every robust combination the roles use (the median per
//  coordinate, the medoid, the geometric median, the majority per value)
//  returns exactly a value that holds more than half of the weight, so
//  while the agreeing replicas hold that majority the tick's combined
//  input is theirs whatever else arrived. The reputation's weights
//  normally give it them (an honest replica has weight 1, a liar at most
//  1); but a consumer's reputation is its own history (a restarted
//  consumer starts afresh, an honest replica back from a restart serves
//  its probation at one consumer and not at another), and with a liar in,
//  two honest consumers would then combine different values and their
//  states, which must stay bit-identical, drift apart for good. So where
//  the agreeing replicas hold no majority of the weight, they get full
//  weight (counted: quintet_upstream_reweighted_total); the others keep
//  theirs. A liar cannot use it: f + 1 agreeing replicas include an
//  honest one, and at most f lie.
static void
s_agreement_weights (qt_stage_t *self, size_t upstream, uint64_t tick, qt_message_t **slots)
{
    bool members [QT_QUORUM_MAX_REPLICAS];
    qt_quorum_t *quorum = self->quorum [upstream];
    double *weight = self->weight [upstream];
    //  All present at full weight (the usual tick): f + 1 of at most 2f + 1
    //  are a majority already, so nothing to compare
    bool full = true;
    for (uint32_t r = 0; r < qt_quorum_replicas (quorum); r++)
        full &= !slots [r] || weight [r] == 1;
    if (full || qt_quorum_agreement (quorum, tick, members) <= qt_quorum_faults (quorum))
        return;
    double agreeing = 0, total = 0;
    for (uint32_t r = 0; r < qt_quorum_replicas (quorum); r++)
        if (slots [r]) {
            total += weight [r];
            if (members [r])
                agreeing += weight [r];
        }
    if (agreeing > total / 2)
        return;
    for (uint32_t r = 0; r < qt_quorum_replicas (quorum); r++)
        if (members [r])
            weight [r] = 1;
    self->reweighted [upstream]++;
}

void
qt_stage_report_distance (qt_stage_t *self, size_t upstream, uint32_t replica, double distance)
{
    if (upstream < self->role->upstreams && replica >= 1
    &&  replica <= qt_quorum_replicas (self->quorum [upstream]))
        self->distance [upstream][replica - 1] = distance;
}

double
qt_stage_replica_weight (qt_stage_t *self, size_t upstream, uint32_t replica)
{
    if (upstream < self->role->upstreams && replica >= 1
    &&  replica <= qt_quorum_replicas (self->quorum [upstream]))
        return self->weight [upstream][replica - 1];
    return 1;
}

qt_reputation_t *
qt_stage_reputation (qt_stage_t *self, size_t upstream)
{
    return upstream < self->role->upstreams ? self->reputation [upstream] : NULL;
}

//  Ticks skipped (a quorum resynchronised, or gave ticks up) are inputs
//  this replica never processed and its peers may have: catch up
static void
s_catchup_skipped (qt_stage_t *self)
{
    if (!self->catchup)
        return;
    uint64_t skipped = 0;
    for (size_t i = 0; i < self->role->upstreams; i++)
        skipped += qt_quorum_skipped (self->quorum [i]);
    if (skipped > self->skipped_seen && self->ticks > 0)
        qt_catchup_diverged (self->catchup, "ticks skipped");
    self->skipped_seen = skipped;
}

//  Processes every tick that is ready in all upstreams
int
qt_stage_process_ready (qt_stage_t *self, int64_t now_ms)
{
    uint64_t tick;
    while (qt_quorum_ready_all (self->quorum, self->role->upstreams, now_ms, &tick)) {
        s_catchup_skipped (self);
        qt_message_t **inputs [QT_STAGE_MAX_UPSTREAMS];
        for (size_t i = 0; i < self->role->upstreams; i++) {
            inputs [i] = qt_quorum_slots (self->quorum [i], tick);
            s_reputation_weights (self, i, inputs [i]);
            s_agreement_weights (self, i, tick, inputs [i]);
        }
        uint64_t publish_calls = self->publish_calls;
        int64_t started_ns = zclock_usecs () * 1000;
        self->tick_failed = false;
        if (self->role->process (self->state, self, tick, inputs))
            return -1;
        for (size_t i = 0; i < self->role->upstreams; i++)
            qt_reputation_update (self->reputation [i], tick, self->distance [i]);
        //  The inputs are the quorum's until qt_quorum_done, or the
        //  catch-up's if it keeps this tick to replay it
        bool failed = self->tick_failed;
        if (!failed)
            qt_stage_metrics_tick (self, inputs, started_ns, tick);
        bool keep = qt_catchup_keeps (self->catchup, tick);
        qt_message_t *taken [QT_STAGE_MAX_UPSTREAMS][QT_QUORUM_MAX_REPLICAS];
        qt_message_t **taken_p [QT_STAGE_MAX_UPSTREAMS];
        for (size_t i = 0; i < self->role->upstreams; i++) {
            qt_quorum_done_take (self->quorum [i], tick, keep ? taken [i] : NULL);
            taken_p [i] = taken [i];
        }
        if (self->catchup)
            qt_catchup_processed (self->catchup, tick, keep ? taken_p : NULL, self->weight, now_ms);
        if (failed)
            continue;       //  consumed, but not progress (qt_stage_tick_failed)
        //  A role that answers a tick with nothing has finished by design
        //  (the world after its last episode): idle, not stuck
        self->finished = self->publish_calls == publish_calls;
        self->ticks++;
        self->last_progress_ms = now_ms;
    }
    return 0;
}

static int64_t
s_health_window_ms (qt_stage_t *self);

//  Upstream replicas heard from within the last window_ms, for one upstream
static uint32_t
s_heard (qt_stage_t *self, size_t index, int64_t now_ms, int64_t window_ms)
{
    uint32_t heard = 0;
    uint32_t replicas = qt_quorum_replicas (self->quorum [index]);
    for (uint32_t r = 0; r < replicas && r < QT_QUORUM_MAX_REPLICAS; r++)
        if (self->heard_ms [index][r] > 0 && now_ms - self->heard_ms [index][r] <= window_ms)
            heard++;
    return heard;
}

//  Up, as reported (STATUS=, status, /metrics): the quorum counts it up
//  (it has not missed down_after ticks) and it was heard from within the
//  health window. While the quorum holds no tick completes and nobody
//  misses one, so "up" alone would go on counting stopped replicas.
static bool
s_replica_up (qt_stage_t *self, size_t index, uint32_t replica, int64_t now_ms)
{
    int64_t heard = replica >= 1 && replica <= QT_QUORUM_MAX_REPLICAS
                  ? self->heard_ms [index][replica - 1] : 0;
    return qt_quorum_replica_up (self->quorum [index], replica)
        && heard > 0 && now_ms - heard <= s_health_window_ms (self);
}

static uint32_t
s_up (qt_stage_t *self, size_t index, int64_t now_ms)
{
    uint32_t up = 0;
    for (uint32_t r = 1; r <= qt_quorum_replicas (self->quorum [index]); r++)
        up += s_replica_up (self, index, r, now_ms);
    return up;
}

//  True if a quorum (n - f) of every upstream role has been heard from
//  within window_ms (a negative window: ever, since start)
static bool
s_upstreams_reachable (qt_stage_t *self, int64_t now_ms, int64_t window_ms)
{
    for (size_t i = 0; i < self->role->upstreams; i++) {
        qt_quorum_t *quorum = self->quorum [i];
        uint32_t needed = qt_quorum_replicas (quorum) - qt_quorum_faults (quorum);
        if (s_heard (self, i, now_ms, window_ms < 0 ? INT64_MAX : window_ms) < needed)
            return false;
    }
    return true;
}

//  READY=1 once sockets are bound, keys loaded (both done before the loop)
//  and a quorum (n - f) of every upstream role has sent a verified message.
//  Healthy, for WATCHDOG=1: a tick was processed within the watchdog
//  interval, or the stage is idle rather than stuck: it has finished (the
//  world after its episodes), or a quorum of every upstream is alive and
//  re-sending (the pipeline waits on something further away). A stage whose
//  upstream quorum has gone silent, or whose loop is wedged, stops feeding
//  the watchdog and systemd restarts it. Before READY the watchdog is fed:
//  TimeoutStartSec= bounds the start instead.
//  How recent "alive" is: the watchdog interval, or two status intervals
static int64_t
s_health_window_ms (qt_stage_t *self)
{
    return self->watchdog_usec > 0 ? (int64_t) (self->watchdog_usec / 1000) : 2 * self->status_ms;
}

static const char *
s_health (qt_stage_t *self, int64_t now_ms, bool *healthy)
{
    int64_t window_ms = s_health_window_ms (self);
    if (!self->ready && s_upstreams_reachable (self, now_ms, -1)) {
        self->ready = true;
        if (self->options.ready)
            self->options.ready (self->options.ctx);
        qt_log (LOG_INFO, "upstreams reachable: ready");
    }
    *healthy = true;
    if (!self->ready)
        return "waiting for upstreams";
    if (self->degraded) {
        *healthy = false;
        return self->degraded_state;
    }
    if (self->ticks > 0 && now_ms - self->last_progress_ms < window_ms)
        return "running";
    if (self->finished)
        return "finished, idle";
    if (s_upstreams_reachable (self, now_ms, window_ms))
        return "idle, upstreams alive";
    *healthy = false;
    return "stalled, upstream quorum silent";
}

//  The one snapshot the status line, the control reply, the stop summary
//  and /metrics are rendered from
void
qt_stage_status_fill (qt_stage_t *self, int64_t now_ms, qt_stage_status_t *status)
{
    memset (status, 0, sizeof *status);
    status->role = self->role->role;
    status->replica = self->replica;
    status->endpoint = self->endpoint;
    status->state = s_health (self, now_ms, &status->healthy);
    status->ready = self->ready;
    status->tick = self->have_last ? self->last_tick : 0;
    status->published_any = self->have_last;
    status->ticks = self->ticks;
    status->published = self->published;
    status->resends = self->resends;
    status->paused = self->paused;
    if (self->verifier) {
        status->accepted = qt_verifier_accepted (self->verifier);
        status->dropped = qt_verifier_drops_total (self->verifier);
        for (int c = QT_DROP_NONE + 1; c < QT_DROP_CAUSES; c++)
            status->drops [c] = qt_verifier_drops (self->verifier, (qt_drop_cause_t) c);
    }
    if (self->control) {
        status->control = true;
        status->control_answered = self->control_answered;
        for (int c = QT_DROP_NONE + 1; c < QT_DROP_CAUSES; c++)
            status->control_drops [c] = qt_verifier_drops (self->control_verifier, (qt_drop_cause_t) c);
        status->control_throttled = self->control_throttled;
        status->control_dropped = qt_verifier_drops_total (self->control_verifier)
                                + self->control_throttled;
    }
    if (self->catchup) {
        status->catchup = true;
        status->catchup_state = qt_catchup_state (self->catchup);
        status->catchup_agreed = qt_catchup_agreed (self->catchup);
        status->catchup_restored = qt_catchup_restored (self->catchup);
        status->catchup_failed = qt_catchup_failed (self->catchup);
        status->catchup_served = qt_catchup_served (self->catchup);
    }
    for (size_t i = 0; i < self->role->upstreams && self->quorum [i]; i++) {
        qt_quorum_t *quorum = self->quorum [i];
        qt_stage_upstream_status_t *up = &status->upstream [i];
        up->role = qt_quorum_role (quorum);
        up->replicas = qt_quorum_replicas (quorum);
        up->faults = qt_quorum_faults (quorum);
        up->up = s_up (self, i, now_ms);
        up->heard = s_heard (self, i, now_ms, s_health_window_ms (self));
        up->holding = qt_quorum_holding (quorum);
        up->late = qt_quorum_late (quorum);
        up->skipped = qt_quorum_skipped (quorum);
        up->evicted = qt_quorum_evicted (quorum);
        up->unagreed = qt_quorum_unagreed (quorum);
        up->reweighted = self->reweighted [i];
        for (uint32_t r = 0; r < up->replicas && r < QT_QUORUM_MAX_REPLICAS; r++) {
            up->replica_up [r] = s_replica_up (self, i, r + 1, now_ms);
            up->standing [r] = qt_reputation_status_name (qt_reputation_status (self->reputation [i], r + 1));
            up->reason [r] = qt_reputation_reason (self->reputation [i], r + 1);
            up->weight [r] = self->weight [i][r];
        }
        status->upstreams = i + 1;
    }
}

void
qt_stage_status (qt_stage_t *self, qt_stage_status_t *status)
{
    //  Outside the loop nothing is announced (no READY=1 after STOPPING=1)
    void (*ready) (void *ctx) = self->options.ready;
    self->options.ready = NULL;
    qt_stage_status_fill (self, zclock_mono (), status);
    self->options.ready = ready;
}

//  Every status interval: the snapshot to the daemon (STATUS=, WATCHDOG=1)
//  and to /metrics
void
qt_stage_status_tick (qt_stage_t *self, int64_t now_ms)
{
    qt_stage_status_t status;
    qt_stage_status_fill (self, now_ms, &status);
    if (self->options.status) {
        char line [QT_STAGE_STATUS_LINE];
        qt_stage_status_line (&status, line, sizeof line);
        self->options.status (self->options.ctx, &status, line);
    }
    qt_stage_metrics_refresh (self, &status);
    self->last_status_ms = now_ms;
}

