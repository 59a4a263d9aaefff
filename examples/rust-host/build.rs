fn main() {
    bpfc_build::Builder::new()
        .source("src/bpf/limiter.bpf.c")
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
}
