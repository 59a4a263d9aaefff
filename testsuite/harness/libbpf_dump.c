/*
 * What libbpf makes of a BPF object, for the loader tests to compare with.
 *
 *   libbpf_dump OBJ            the programs libbpf finds when it opens OBJ:
 *                              "prog NAME SECTION" lines
 *   libbpf_dump OBJ BTF        also loads OBJ into the running kernel with
 *                              CO-RE resolved against the BTF file BTF (needs
 *                              root), then prints each program's final
 *                              instructions as libbpf handed them to the
 *                              kernel: "insn PC CODE DST SRC OFF IMM" lines
 *                              after each "prog" line
 *
 * Exit status 2 when libbpf cannot open or load the object (its message on
 * standard error).
 */
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: %s OBJ [BTF]\n", argv[0]);
		return 1;
	}
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = argc == 3 ? argv[2] : NULL);
	struct bpf_object *obj = bpf_object__open_file(argv[1], &opts);
	if (!obj) {
		fprintf(stderr, "libbpf cannot open %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (argc == 3) {
		int err = bpf_object__load(obj);
		if (err) {
			fprintf(stderr, "libbpf cannot load %s: %s\n", argv[1], strerror(-err));
			bpf_object__close(obj);
			return 2;
		}
	}
	struct bpf_program *prog;
	bpf_object__for_each_program(prog, obj)
	{
		printf("prog %s %s\n", bpf_program__name(prog), bpf_program__section_name(prog));
		if (argc != 3)
			continue;
		const struct bpf_insn *insns = bpf_program__insns(prog);
		size_t n = bpf_program__insn_cnt(prog);
		for (size_t i = 0; i < n; i++)
			printf("insn %zu %u %u %u %d %d\n", i, insns[i].code, insns[i].dst_reg,
			       insns[i].src_reg, insns[i].off, insns[i].imm);
	}
	bpf_object__close(obj);
	return 0;
}
