/*
 * The running kernel as the oracle for a network program over many
 * packets: load an object with libbpf, run one program with
 * BPF_PROG_TEST_RUN on every packet of a list, in order (maps keep what
 * earlier runs left), then dump the object's maps.
 *
 *   pkt_run OBJ PROG PACKETS [REPEAT]
 *
 * PACKETS has one packet a line: "DATAHEX CTXHEX" (CTXHEX "-": no ctx_in;
 * ctx_out is asked for only with a ctx_in), or a map element to write
 * before the packets that follow: "map NAME KEYHEX VALUEHEX". Output, one
 * line a packet:
 *   ok RETVAL DATAOUTHEX CTXOUTHEX|-
 *   err ERRNO                         (the test run refused the input)
 * then one line per map element: "map NAME KEYHEX VALUEHEX" (maps whose
 * name has a '.', libbpf's global data, are left out), and with REPEAT a
 * last line "duration NS" for a run of the first packet repeated REPEAT
 * times. Failures print one line on stderr and exit 1. The environment
 * variable PKT_RUN_RODATA (hex) replaces the object's .rodata image before
 * load.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void hex(const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
}

static size_t unhex(const char *s, unsigned char *out, size_t cap)
{
	size_t n = strlen(s) / 2;
	if (n > cap)
		n = cap;
	for (size_t i = 0; i < n; i++)
		sscanf(s + 2 * i, "%2hhx", &out[i]);
	return n;
}

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_WARN)
		return vfprintf(stderr, fmt, ap);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: %s OBJ PROG PACKETS [REPEAT]\n", argv[0]);
		return 2;
	}
	libbpf_set_print(silent);
	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "%s: libbpf cannot open it\n", argv[1]);
		return 1;
	}
	const char *ro = getenv("PKT_RUN_RODATA");
	if (ro) {
		static unsigned char image[4096];
		size_t n = unhex(ro, image, sizeof(image));
		struct bpf_map *m, *rodata = NULL;
		bpf_object__for_each_map(m, obj) {
			const char *name = bpf_map__name(m);
			size_t len = strlen(name);
			if (len >= 7 && !strcmp(name + len - 7, ".rodata"))
				rodata = m;
		}
		if (!rodata || bpf_map__set_initial_value(rodata, image, n)) {
			fprintf(stderr, "%s: cannot set the .rodata image\n", argv[1]);
			return 1;
		}
	}
	struct bpf_program *p;
	bpf_object__for_each_program(p, obj)
		bpf_program__set_autoload(p, !strcmp(bpf_program__name(p), argv[2]));
	if (bpf_object__load(obj)) {
		fprintf(stderr, "%s: the kernel refused the object: %s\n", argv[1], strerror(errno));
		return 1;
	}
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, argv[2]);
	if (!prog) {
		fprintf(stderr, "%s: no program %s\n", argv[1], argv[2]);
		return 1;
	}
	int fd = bpf_program__fd(prog);
	FILE *f = fopen(argv[3], "r");
	if (!f) {
		fprintf(stderr, "%s: %s\n", argv[3], strerror(errno));
		return 1;
	}
	static char line[65536];
	static unsigned char data[16384], ctx[512], out[16384], ctx_out[512];
	size_t first_len = 0;
	static unsigned char first[16384];
	while (fgets(line, sizeof(line), f)) {
		char *d = strtok(line, " \n");
		char *c = strtok(NULL, " \n");
		if (!d || !c)
			continue;
		if (!strcmp(d, "map")) {
			char *k = strtok(NULL, " \n"), *v = strtok(NULL, " \n");
			struct bpf_map *m = bpf_object__find_map_by_name(obj, c);
			static unsigned char key[256], val[4096];
			if (!m || !k || !v) {
				fprintf(stderr, "bad map line for %s\n", c);
				return 1;
			}
			unhex(k, key, sizeof(key));
			unhex(v, val, sizeof(val));
			if (bpf_map_update_elem(bpf_map__fd(m), key, val, 0)) {
				fprintf(stderr, "map %s update: %s\n", c, strerror(errno));
				return 1;
			}
			continue;
		}
		size_t dn = unhex(d, data, sizeof(data));
		size_t cn = strcmp(c, "-") ? unhex(c, ctx, sizeof(ctx)) : 0;
		if (!first_len) {
			memcpy(first, data, dn);
			first_len = dn;
		}
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = data, .data_size_in = dn,
			    .data_out = out, .data_size_out = sizeof(out),
			    .ctx_in = cn ? ctx : NULL, .ctx_size_in = cn,
			    .ctx_out = cn ? ctx_out : NULL, .ctx_size_out = cn ? sizeof(ctx_out) : 0,
			    .repeat = 1);
		if (bpf_prog_test_run_opts(fd, &o)) {
			printf("err %d\n", errno);
			continue;
		}
		printf("ok %u ", o.retval);
		hex(out, o.data_size_out);
		printf(" ");
		if (cn)
			hex(ctx_out, o.ctx_size_out);
		else
			printf("-");
		printf("\n");
	}
	struct bpf_map *m;
	bpf_object__for_each_map(m, obj) {
		const char *name = bpf_map__name(m);
		if (strchr(name, '.'))
			continue;
		int mfd = bpf_map__fd(m);
		unsigned ks = bpf_map__key_size(m), vs = bpf_map__value_size(m);
		unsigned char key[256], next[256], val[4096];
		int have = 0;
		while (!bpf_map_get_next_key(mfd, have ? key : NULL, next)) {
			memcpy(key, next, ks);
			have = 1;
			if (bpf_map_lookup_elem(mfd, key, val))
				continue;
			printf("map %s ", name);
			hex(key, ks);
			printf(" ");
			hex(val, vs);
			printf("\n");
		}
	}
	if (argc > 4 && first_len) {
		LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = first, .data_size_in = first_len,
			    .repeat = atoi(argv[4]));
		if (bpf_prog_test_run_opts(fd, &o)) {
			fprintf(stderr, "repeat run: %s\n", strerror(errno));
			return 1;
		}
		printf("duration %u\n", o.duration);
	}
	return 0;
}
