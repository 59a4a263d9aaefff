/*
 * The running kernel as the oracle for one program of an object: load the
 * object as libbpf does (maps created, global data written, prog arrays and
 * maps of maps filled from their `values`), run one program with
 * BPF_PROG_TEST_RUN, and print what the run left behind as one JSON object.
 *
 *   kernel_run OBJ PROG [options]
 *
 *   --ctx-in HEX         the context (ctx_in); SEC("syscall") programs write
 *                        it back, which is reported as ctx_out
 *   --ctx-out-size N     ctx_out buffer size (program types that copy it out)
 *   --data-in HEX        packet data (data_in)
 *   --data-out-size N    data_out buffer size
 *   --repeat N           test.repeat (the kernel averages the duration)
 *   --cpu N              run on CPU N (BPF_F_TEST_RUN_ON_CPU), from a task
 *                        pinned to that CPU: the kernel then runs the program
 *                        in this task, as bpfc runs it in the host thread,
 *                        not in an interrupt on another CPU (where user
 *                        memory reads see whatever task that CPU was running)
 *   --maps-in FILE       fill maps first: lines "NAME KEYHEX VALUEHEX"
 *                        ("-" for the empty key of queues, stacks and bloom
 *                        filters); a per-CPU map's value is either every
 *                        CPU's slot (8-byte aligned) or one value for all;
 *                        a ".rodata" value becomes the map's initial value
 *                        before load, as `bpfc run --maps-in` takes it
 *   --wait-ms N          sleep this long after the run before reading maps
 *                        (timer callbacks)
 *
 * Output (stdout), on success:
 *   {"retval": N, "duration": N, "ctx_out": "HEX", "data_out": "HEX",
 *    "maps": {NAME: [ENTRY, ...], ...}, "map_errors": {NAME: ERRNO, ...},
 *    "records": {NAME: ["01 02 ..", ...], ...}}
 * where maps are in the shape `bpfc run --maps-out` writes (bpftool's map
 * dump: {"key": ["0x01", ...], "value": [...]}, per-CPU maps
 * {"key": [...], "values": [{"cpu": N, "value": [...]}, ...]}); maps
 * without keys are left out, global data maps are named by their section
 * (".data", ".rodata", ".bss", ".data.NAME"), not by libbpf's
 * object-prefixed names. A map the kernel cannot read from user space is
 * listed in map_errors with the errno. Records are what ring buffers (and
 * perf event arrays, "cpu N: HEX") hold after the run, hex bytes separated
 * by spaces as `bpfc run` prints them.
 *
 * Failures print one line on stderr and exit 1 (usage: 2).
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_PERF 8

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int silent(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	static char buf[1 << 20];
	const size_t keep = 4096;
	int n;

	/* Warnings and errors only (the verifier log of a refused program),
	 * and of a long message its end, where the verifier says why. */
	if (level == LIBBPF_DEBUG || level == LIBBPF_INFO)
		return 0;
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (n < 0)
		return n;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if ((size_t)n > keep)
		return fprintf(stderr, "[...]%s", buf + n - keep);
	return fputs(buf, stderr);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode HEX into a fresh buffer; *len gets its size. */
static unsigned char *unhex(const char *hex, size_t *len, const char *what)
{
	size_t n = strlen(hex);
	unsigned char *out;

	if (n % 2)
		die("%s: odd number of hex digits", what);
	out = calloc(n / 2 + 1, 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			die("%s: bad hex digit at %zu", what, 2 * i);
		out[i] = hi << 4 | lo;
	}
	*len = n / 2;
	return out;
}

static void print_hex(const unsigned char *b, size_t n, const char *sep)
{
	for (size_t i = 0; i < n; i++)
		printf("%s%02x", i ? sep : "", b[i]);
}

static void print_bytes(const unsigned char *b, size_t n)
{
	putchar('[');
	for (size_t i = 0; i < n; i++)
		printf("%s\"0x%02x\"", i ? ", " : "", b[i]);
	putchar(']');
}

/* The name bpfc gives a map: a global data map's section name. */
static const char *map_name(const struct bpf_map *map)
{
	const char *name = bpf_map__name(map);
	const char *dot = strchr(name, '.');

	if (bpf_map__is_internal(map) && dot)
		return dot;
	return name;
}

static int is_percpu(enum bpf_map_type t)
{
	return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       t == BPF_MAP_TYPE_LRU_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

static struct bpf_map *find_map(struct bpf_object *obj, const char *name)
{
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj)
	{
		if (!strcmp(map_name(map), name) || !strcmp(bpf_map__name(map), name))
			return map;
	}
	return NULL;
}

static int is_rodata(const struct bpf_map *map)
{
	const char *name = map_name(map);

	return bpf_map__is_internal(map) && !strncmp(name, ".rodata", 7);
}

/* Before load (`initial`): the lines for .rodata maps set their initial
 * values; after load: the other lines update their maps. */
static void fill_maps(struct bpf_object *obj, const char *path, int initial)
{
	FILE *f = fopen(path, "r");
	char line[1 << 16];
	int lineno = 0;

	if (!f)
		die("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		char name[256], khex[4096], vhex[sizeof(line)];
		unsigned char *key, *value;
		size_t klen, vlen;
		struct bpf_map *map;
		int err;

		lineno++;
		if (line[0] == '\n' || line[0] == '#')
			continue;
		if (sscanf(line, "%255s %4095s %65535s", name, khex, vhex) != 3)
			die("%s:%d: expected NAME KEYHEX VALUEHEX", path, lineno);
		map = find_map(obj, name);
		if (!map)
			die("%s:%d: no map named %s", path, lineno, name);
		if (is_rodata(map) != initial)
			continue;
		if (initial) {
			value = unhex(vhex, &vlen, "value");
			if (bpf_map__set_initial_value(map, value, vlen))
				die("%s:%d: map %s initial value: %s", path, lineno, name,
				    strerror(errno));
			free(value);
			continue;
		}
		if (!strcmp(khex, "-")) {
			key = NULL;
			klen = 0;
		} else {
			key = unhex(khex, &klen, "key");
		}
		value = unhex(vhex, &vlen, "value");
		if (is_percpu(bpf_map__type(map)) && vlen <= (bpf_map__value_size(map) + 7) / 8 * 8) {
			/* One value for every CPU slot, as `bpfc run --maps-in` does. */
			size_t slot = (bpf_map__value_size(map) + 7) / 8 * 8;
			int ncpus = libbpf_num_possible_cpus();
			unsigned char *all = calloc(slot, ncpus);

			for (int c = 0; c < ncpus; c++)
				memcpy(all + c * slot, value, vlen);
			free(value);
			value = all;
		}
		err = bpf_map_update_elem(bpf_map__fd(map), key, value, 0);
		if (err)
			die("%s:%d: map %s update: %s", path, lineno, name, strerror(errno));
		free(key);
		free(value);
	}
	fclose(f);
}

/* One map's entries in bpftool's shape, or -errno when it cannot be read. */
static int dump_map(const struct bpf_map *map, int ncpus, int *first)
{
	int fd = bpf_map__fd(map);
	unsigned int ks = bpf_map__key_size(map), vs = bpf_map__value_size(map);
	int percpu = is_percpu(bpf_map__type(map));
	size_t slot = (vs + 7) / 8 * 8;
	size_t vbuf = percpu ? slot * ncpus : vs;
	unsigned char *key = calloc(ks, 1), *next = calloc(ks, 1), *val = calloc(vbuf, 1);
	int have = 0, n = 0;

	/* Check that the first element can be read before printing anything. */
	if (bpf_map_get_next_key(fd, NULL, next) == 0 &&
	    bpf_map_lookup_elem(fd, next, val) && errno != ENOENT) {
		int e = errno;

		free(key);
		free(next);
		free(val);
		return -e;
	}
	printf("%s\"%s\": [", *first ? "" : ", ", map_name(map));
	*first = 0;
	while (bpf_map_get_next_key(fd, have ? key : NULL, next) == 0) {
		memcpy(key, next, ks);
		have = 1;
		if (bpf_map_lookup_elem(fd, key, val))
			continue; /* deleted meanwhile, or unreadable */
		printf("%s{\"key\": ", n++ ? ", " : "");
		print_bytes(key, ks);
		if (percpu) {
			printf(", \"values\": [");
			for (int c = 0; c < ncpus; c++) {
				printf("%s{\"cpu\": %d, \"value\": ", c ? ", " : "", c);
				print_bytes(val + c * slot, vs);
				putchar('}');
			}
			putchar(']');
		} else {
			printf(", \"value\": ");
			print_bytes(val, vs);
		}
		putchar('}');
	}
	putchar(']');
	free(key);
	free(next);
	free(val);
	return 0;
}

/* Records of ring buffers and perf event arrays, collected after the run. */
struct records {
	const char *map;
	int n;
};

static int first_map_with_records;

static void record_open(struct records *r)
{
	if (r->n++ == 0) {
		printf("%s\"%s\": [", first_map_with_records ? "" : ", ", r->map);
		first_map_with_records = 0;
	} else {
		printf(", ");
	}
}

static int ringbuf_record(void *ctx, void *data, size_t size)
{
	struct records *r = ctx;

	record_open(r);
	putchar('"');
	print_hex(data, size, " ");
	putchar('"');
	return 0;
}

static void perf_record(void *ctx, int cpu, void *data, __u32 size)
{
	struct records *r = ctx;

	record_open(r);
	printf("\"cpu %d: ", cpu);
	print_hex(data, size, " ");
	putchar('"');
}

static void perf_lost(void *ctx, int cpu, __u64 n)
{
	struct records *r = ctx;

	record_open(r);
	printf("\"cpu %d: lost %llu\"", cpu, (unsigned long long)n);
}

int main(int argc, char **argv)
{
	const char *ctx_hex = NULL, *data_hex = NULL, *maps_in = NULL;
	size_t ctx_out_size = 0, data_out_size = 0, ctx_len = 0, data_len = 0;
	int repeat = 0, cpu = -1, wait_ms = 0;
	unsigned char *ctx_in = NULL, *data_in = NULL, *ctx_out = NULL, *data_out = NULL;
	struct perf_buffer *perf[MAX_PERF];
	struct records perf_recs[MAX_PERF];
	int nperf = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: %s OBJ PROG [--ctx-in HEX] [--ctx-out-size N] "
				"[--data-in HEX] [--data-out-size N] [--repeat N] [--cpu N] "
				"[--maps-in FILE] [--wait-ms N]\n",
			argv[0]);
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		const char *a = argv[i];

		if (i + 1 >= argc) {
			fprintf(stderr, "%s: missing value\n", a);
			return 2;
		}
		const char *v = argv[++i];

		if (!strcmp(a, "--ctx-in"))
			ctx_hex = v;
		else if (!strcmp(a, "--ctx-out-size"))
			ctx_out_size = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--data-in"))
			data_hex = v;
		else if (!strcmp(a, "--data-out-size"))
			data_out_size = strtoul(v, NULL, 0);
		else if (!strcmp(a, "--repeat"))
			repeat = atoi(v);
		else if (!strcmp(a, "--cpu"))
			cpu = atoi(v);
		else if (!strcmp(a, "--maps-in"))
			maps_in = v;
		else if (!strcmp(a, "--wait-ms"))
			wait_ms = atoi(v);
		else {
			fprintf(stderr, "unknown option %s\n", a);
			return 2;
		}
	}
	libbpf_set_print(silent);

	struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);

	if (!obj)
		die("%s: libbpf cannot open it: %s", argv[1], strerror(errno));
	struct bpf_program *prog = bpf_object__find_program_by_name(obj, argv[2]);

	if (!prog)
		die("%s: no program %s", argv[1], argv[2]);
	if (maps_in)
		fill_maps(obj, maps_in, 1);
	if (bpf_object__load(obj))
		die("%s: the kernel refused the object: %s", argv[1], strerror(errno));
	if (maps_in)
		fill_maps(obj, maps_in, 0);

	/* Perf event arrays deliver only to open buffers: one per array. */
	struct bpf_map *map;

	bpf_object__for_each_map(map, obj)
	{
		if (bpf_map__type(map) != BPF_MAP_TYPE_PERF_EVENT_ARRAY || nperf == MAX_PERF)
			continue;
		perf_recs[nperf] = (struct records){ .map = map_name(map) };
		perf[nperf] = perf_buffer__new(bpf_map__fd(map), 8, perf_record, perf_lost,
					       &perf_recs[nperf], NULL);
		if (!perf[nperf])
			die("map %s: perf buffer: %s", map_name(map), strerror(errno));
		nperf++;
	}

	if (ctx_hex)
		ctx_in = unhex(ctx_hex, &ctx_len, "--ctx-in");
	if (data_hex)
		data_in = unhex(data_hex, &data_len, "--data-in");
	if (ctx_out_size)
		ctx_out = calloc(ctx_out_size, 1);
	if (data_out_size)
		data_out = calloc(data_out_size, 1);

	LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = ctx_in, .ctx_size_in = ctx_len,
		    .ctx_out = ctx_out, .ctx_size_out = ctx_out_size, .data_in = data_in,
		    .data_size_in = data_len, .data_out = data_out,
		    .data_size_out = data_out_size, .repeat = repeat);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("--cpu %d: sched_setaffinity: %s", cpu, strerror(errno));
		opts.flags = BPF_F_TEST_RUN_ON_CPU;
		opts.cpu = cpu;
	}
	if (bpf_prog_test_run_opts(bpf_program__fd(prog), &opts))
		die("%s: BPF_PROG_TEST_RUN of %s: %s", argv[1], argv[2], strerror(errno));
	if (wait_ms > 0) {
		struct timespec ts = { wait_ms / 1000, (wait_ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}

	printf("{\"retval\": %u, \"duration\": %u, \"ctx_out\": \"", opts.retval, opts.duration);
	/* Syscall programs write the context back into ctx_in. */
	if (bpf_program__type(prog) == BPF_PROG_TYPE_SYSCALL)
		print_hex(ctx_in, ctx_len, "");
	else
		print_hex(ctx_out, ctx_out ? opts.ctx_size_out : 0, "");
	printf("\", \"data_out\": \"");
	/* The kernel reports the sizes even when no buffer was given. */
	print_hex(data_out, data_out ? opts.data_size_out : 0, "");
	printf("\", \"maps\": {");

	int ncpus = libbpf_num_possible_cpus(), first = 1, first_err = 1;
	char errors[4096] = "";

	bpf_object__for_each_map(map, obj)
	{
		if (bpf_map__key_size(map) == 0)
			continue;
		int err = dump_map(map, ncpus, &first);

		if (err) {
			size_t at = strlen(errors);

			snprintf(errors + at, sizeof(errors) - at, "%s\"%s\": %d",
				 first_err ? "" : ", ", map_name(map), -err);
			first_err = 0;
		}
	}
	printf("}, \"map_errors\": {%s}, \"records\": {", errors);
	first_map_with_records = 1;
	bpf_object__for_each_map(map, obj)
	{
		if (bpf_map__type(map) != BPF_MAP_TYPE_RINGBUF)
			continue;
		struct records r = { .map = map_name(map) };
		struct ring_buffer *rb =
			ring_buffer__new(bpf_map__fd(map), ringbuf_record, &r, NULL);

		if (!rb)
			die("map %s: ring buffer: %s", map_name(map), strerror(errno));
		ring_buffer__consume(rb);
		if (r.n)
			putchar(']');
		ring_buffer__free(rb);
	}
	for (int i = 0; i < nperf; i++) {
		perf_buffer__consume(perf[i]);
		if (perf_recs[i].n)
			putchar(']');
		perf_buffer__free(perf[i]);
	}
	printf("}}\n");
	bpf_object__close(obj);
	return 0;
}
