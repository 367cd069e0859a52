/* A small harness around DPDK's rte_acl for bench/run.sh: loads one ClassBench filter set and trace,
 * builds an ACL context (first filter = highest priority), classifies the trace in bursts with the
 * scalar and each SIMD method the CPU supports, and prints one JSON object. Written for Chainwalk. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <stddef.h>
#include <time.h>
#include <arpa/inet.h>
#include <rte_eal.h>
#include <rte_acl.h>

struct tuple { uint8_t proto; uint32_t src; uint32_t dst; uint16_t sport; uint16_t dport; };

static struct rte_acl_field_def defs[5] = {
    { .type = RTE_ACL_FIELD_TYPE_BITMASK, .size = 1, .field_index = 0, .input_index = 0, .offset = offsetof(struct tuple, proto) },
    { .type = RTE_ACL_FIELD_TYPE_MASK, .size = 4, .field_index = 1, .input_index = 1, .offset = offsetof(struct tuple, src) },
    { .type = RTE_ACL_FIELD_TYPE_MASK, .size = 4, .field_index = 2, .input_index = 2, .offset = offsetof(struct tuple, dst) },
    { .type = RTE_ACL_FIELD_TYPE_RANGE, .size = 2, .field_index = 3, .input_index = 3, .offset = offsetof(struct tuple, sport) },
    { .type = RTE_ACL_FIELD_TYPE_RANGE, .size = 2, .field_index = 4, .input_index = 3, .offset = offsetof(struct tuple, dport) },
};
RTE_ACL_RULE_DEF(acl5, 5);

struct filter { uint32_t src, smask, dst, dmask; uint16_t slo, shi, dlo, dhi; uint8_t proto, pmask; int slen, dlen; };

/* Thread CPU time, as the Chainwalk harness measures (the machine is shared). */
static double now(void) { struct timespec t; clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static uint32_t ip(const char *s) { unsigned a, b, c, d; sscanf(s, "%u.%u.%u.%u", &a, &b, &c, &d); return (a << 24) | (b << 16) | (c << 8) | d; }

int main(int argc, char **argv)
{
    if (argc < 4) { fprintf(stderr, "usage: acl_bench FILTERS TRACE MAX_HEADERS [REPS]\n"); return 2; }
    const char *fname = argv[1], *tname = argv[2];
    long maxh = atol(argv[3]);
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    char *eal[] = { "acl_bench", "--no-huge", "-m", "12288", "--no-pci", "-l", "0", "--log-level=3", "--no-telemetry", NULL };
    if (rte_eal_init(9, eal) < 0) { printf("{\"reason\": \"rte_eal_init failed\"}\n"); return 1; }

    FILE *f = fopen(fname, "r");
    if (!f) return 1;
    size_t cap = 1 << 17, n = 0;
    struct filter *fs = malloc(cap * sizeof *fs);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char s[64], d[64]; unsigned slo, shi, dlo, dhi, p, pm;
        if (sscanf(line, "@%63s %63s %u : %u %u : %u %x/%x", s, d, &slo, &shi, &dlo, &dhi, &p, &pm) != 8) continue;
        if (n == cap) { cap *= 2; fs = realloc(fs, cap * sizeof *fs); }
        struct filter *x = &fs[n++];
        char *sl = strchr(s, '/'), *dl = strchr(d, '/');
        *sl = 0; *dl = 0;
        x->src = ip(s); x->slen = atoi(sl + 1); x->dst = ip(d); x->dlen = atoi(dl + 1);
        x->smask = x->slen ? 0xffffffffu << (32 - x->slen) : 0; x->dmask = x->dlen ? 0xffffffffu << (32 - x->dlen) : 0;
        x->slo = slo; x->shi = shi; x->dlo = dlo; x->dhi = dhi; x->proto = p; x->pmask = pm;
    }
    fclose(f);

    f = fopen(tname, "r");
    if (!f) return 1;
    size_t tcap = 1 << 20, tn = 0;
    struct tuple *tr = malloc(tcap * sizeof *tr);
    uint32_t *host = malloc(tcap * 5 * sizeof(uint32_t));
    while (tn < (size_t)maxh && fgets(line, sizeof line, f)) {
        unsigned long a, b, c, d, e;
        if (sscanf(line, "%lu %lu %lu %lu %lu", &a, &b, &c, &d, &e) != 5) continue;
        if (tn == tcap) { tcap *= 2; tr = realloc(tr, tcap * sizeof *tr); host = realloc(host, tcap * 5 * sizeof(uint32_t)); }
        memset(&tr[tn], 0, sizeof tr[tn]);
        tr[tn].proto = e; tr[tn].src = htonl(a); tr[tn].dst = htonl(b); tr[tn].sport = htons(c); tr[tn].dport = htons(d);
        host[tn * 5] = a; host[tn * 5 + 1] = b; host[tn * 5 + 2] = c; host[tn * 5 + 3] = d; host[tn * 5 + 4] = e;
        tn++;
    }
    fclose(f);

    struct rte_acl_param prm = { .name = "cb", .socket_id = SOCKET_ID_ANY, .rule_size = RTE_ACL_RULE_SZ(5), .max_rule_num = n };
    struct rte_acl_ctx *ctx = rte_acl_create(&prm);
    if (!ctx) { printf("{\"reason\": \"rte_acl_create failed\"}\n"); return 1; }
    struct acl5 *rules = calloc(n, sizeof *rules);
    for (size_t i = 0; i < n; i++) {
        struct acl5 *r = &rules[i];
        r->data.category_mask = 1; r->data.priority = (int32_t)(n - i); r->data.userdata = i + 1;
        r->field[0].value.u8 = fs[i].proto; r->field[0].mask_range.u8 = fs[i].pmask;
        r->field[1].value.u32 = fs[i].src & fs[i].smask; r->field[1].mask_range.u32 = fs[i].slen;
        r->field[2].value.u32 = fs[i].dst & fs[i].dmask; r->field[2].mask_range.u32 = fs[i].dlen;
        r->field[3].value.u16 = fs[i].slo; r->field[3].mask_range.u16 = fs[i].shi;
        r->field[4].value.u16 = fs[i].dlo; r->field[4].mask_range.u16 = fs[i].dhi;
    }
    if (rte_acl_add_rules(ctx, (struct rte_acl_rule *)rules, n) != 0) { printf("{\"reason\": \"rte_acl_add_rules failed\"}\n"); return 1; }
    struct rte_acl_config cfg = { .num_categories = 1, .num_fields = 5 };
    memcpy(cfg.defs, defs, sizeof defs);
    double t0 = now();
    int rc = rte_acl_build(ctx, &cfg);
    double build = now() - t0;
    if (rc != 0) { printf("{\"reason\": \"rte_acl_build failed (%d)\", \"build_s\": %.3f}\n", rc, build); return 1; }

    const uint8_t **ptrs = malloc(tn * sizeof *ptrs);
    uint32_t *res = malloc(tn * sizeof *res);
    for (size_t i = 0; i < tn; i++) ptrs[i] = (const uint8_t *)&tr[i];

    /* The first-match answer of a linear scan, for a sample of headers. */
    size_t sample = tn < 2000 ? tn : 2000, wrong = 0;
    rte_acl_set_ctx_classify(ctx, RTE_ACL_CLASSIFY_SCALAR);
    rte_acl_classify(ctx, ptrs, res, sample, 1);
    for (size_t k = 0; k < sample; k++) {
        uint32_t *h = &host[k * 5], want = 0;
        for (size_t i = 0; i < n; i++) {
            struct filter *x = &fs[i];
            if ((h[0] & x->smask) == (x->src & x->smask) && (h[1] & x->dmask) == (x->dst & x->dmask)
                && h[2] >= x->slo && h[2] <= x->shi && h[3] >= x->dlo && h[3] <= x->dhi && (h[4] & x->pmask) == (x->proto & x->pmask)) { want = i + 1; break; }
        }
        if (res[k] != want) wrong++;
    }

    const char *names[] = { "", "scalar", "sse", "avx2", "neon", "altivec", "avx512x16", "avx512x32" };
    printf("{\"filters\": %zu, \"headers\": %zu, \"build_s\": %.3f, \"sample\": %zu, \"sample_wrong\": %zu, \"algs\": {", n, tn, build, sample, wrong);
    int first = 1;
    for (int alg = RTE_ACL_CLASSIFY_SCALAR; alg <= RTE_ACL_CLASSIFY_AVX512X32; alg++) {
        if (alg == RTE_ACL_CLASSIFY_NEON || alg == RTE_ACL_CLASSIFY_ALTIVEC) continue;
        if (rte_acl_set_ctx_classify(ctx, alg) != 0) continue;
        double best = 0;
        for (int r = 0; r < reps; r++) {
            double s = now();
            for (size_t i = 0; i < tn; i += 64) rte_acl_classify(ctx, ptrs + i, res + i, (tn - i) < 64 ? (tn - i) : 64, 1);
            double mpps = tn / (now() - s) / 1e6;
            if (mpps > best) best = mpps;
        }
        printf("%s\"%s\": %.3f", first ? "" : ", ", names[alg], best);
        first = 0;
    }
    printf("}}\n");
    rte_acl_free(ctx);
    rte_eal_cleanup();
    return 0;
}
