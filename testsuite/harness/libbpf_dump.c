/*
 * What libbpf makes of a BPF object, for the loader tests to compare with.
 *
 *   libbpf_dump OBJ        the programs libbpf finds when it opens OBJ:
 *                          "prog NAME SECTION" lines
 *   libbpf_dump OBJ BTF    loads each program of OBJ alone into the running
 *                          kernel (needs root), CO-RE resolved against the
 *                          BTF file BTF, and prints the instructions libbpf
 *                          handed the kernel: "insn PC CODE DST SRC OFF IMM"
 *                          lines after the program's "prog" line, or
 *                          "refused NAME SECTION ERRNO" when the kernel (or
 *                          libbpf) would not load it
 *
 * Exit status 2 when libbpf cannot open the object (its message on
 * standard error).
 */
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static struct bpf_object *open_obj(const char *path, const char *btf)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = btf);
	struct bpf_object *obj = bpf_object__open_file(path, &opts);

	if (!obj)
		fprintf(stderr, "libbpf cannot open %s: %s\n", path, strerror(errno));
	return obj;
}

/* Load program number `want` of `path` alone and print it. */
static int load_one(const char *path, const char *btf, int want)
{
	struct bpf_object *obj = open_obj(path, btf);
	struct bpf_program *prog, *chosen = NULL;
	int i = 0;

	if (!obj)
		return 2;
	bpf_object__for_each_program(prog, obj)
	{
		bpf_program__set_autoload(prog, i == want);
		if (i == want)
			chosen = prog;
		i++;
	}
	if (!chosen) {
		bpf_object__close(obj);
		return 1;
	}
	int err = bpf_object__load(obj);
	if (err) {
		printf("refused %s %s %d\n", bpf_program__name(chosen),
		       bpf_program__section_name(chosen), -err);
	} else {
		const struct bpf_insn *insns = bpf_program__insns(chosen);
		size_t n = bpf_program__insn_cnt(chosen);

		printf("prog %s %s\n", bpf_program__name(chosen),
		       bpf_program__section_name(chosen));
		for (size_t k = 0; k < n; k++) {
			printf("insn %zu %u %u %u %d %d", k, insns[k].code, insns[k].dst_reg,
			       insns[k].src_reg, insns[k].off, insns[k].imm);
			/* A map reference: the map's name instead of its fd. */
			if (insns[k].code == (BPF_LD | BPF_DW | BPF_IMM) &&
			    (insns[k].src_reg == BPF_PSEUDO_MAP_FD ||
			     insns[k].src_reg == BPF_PSEUDO_MAP_VALUE)) {
				struct bpf_map *map;

				bpf_object__for_each_map(map, obj)
				{
					if (bpf_map__fd(map) == insns[k].imm)
						printf(" %s", bpf_map__name(map));
				}
			}
			printf("\n");
		}
	}
	bpf_object__close(obj);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: %s OBJ [BTF]\n", argv[0]);
		return 1;
	}
	struct bpf_object *obj = open_obj(argv[1], NULL);
	struct bpf_program *prog;
	int n = 0;

	if (!obj)
		return 2;
	bpf_object__for_each_program(prog, obj)
	{
		if (argc == 2)
			printf("prog %s %s\n", bpf_program__name(prog), bpf_program__section_name(prog));
		n++;
	}
	bpf_object__close(obj);
	if (argc == 3) {
		fflush(stdout);
		for (int i = 0; i < n; i++) {
			int r = load_one(argv[1], argv[2], i);

			if (r)
				return r;
			fflush(stdout);
		}
	}
	return 0;
}
