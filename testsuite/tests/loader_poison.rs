//! What happens when a program reaches an instruction the loader poisoned
//! (a CO-RE relocation that could not be applied): the interpreter, JIT code
//! (checked and unchecked) and an AOT object stop with fault code 9 at that
//! instruction, in the same words; a run that does not reach it is
//! unaffected. `core_poison.o` against the running kernel's BTF, where no
//! task_struct has `state`, chooses the path from its input.
//!
//! And one program that cannot be loaded leaves the others usable
//! (`one_broken.o`).

use bpfc_compiler::codegen::aot::compile_object;
use bpfc_compiler::codegen::jit::{JitError, JitProgram};
use bpfc_compiler::codegen::{Binding, CodegenOptions, Request};
use bpfc_compiler::interp;
use bpfc_compiler::loader::core::POISON;
use bpfc_compiler::loader::{load, Btf, LoadError, LoadOptions, Object};
use bpfc_runtime::abi::FaultCode;
use bpfc_runtime::{ExecContext, HelperTable};
use bpfc_testsuite::aot::{link_and_run, tool_available, AotRunError, AotTarget};
use bpfc_testsuite::{elf_fixture_dir, skip};
use std::str::FromStr;

const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

fn poisoned_program(test: &str) -> Option<Object> {
    let btf = match std::fs::read(VMLINUX) {
        Ok(b) => Btf::parse_target(&b).unwrap(),
        Err(e) => {
            skip(test, &format!("{VMLINUX}: {e}"));
            return None;
        }
    };
    let opts = LoadOptions {
        target_btf: Some(btf),
        ..Default::default()
    };
    Some(
        load(
            &std::fs::read(elf_fixture_dir().join("core_poison.o")).unwrap(),
            &opts,
        )
        .unwrap(),
    )
}

#[test]
fn reaching_a_poisoned_instruction_faults_with_code_9_everywhere() {
    let test = "reaching_a_poisoned_instruction_faults_with_code_9_everywhere";
    let Some(obj) = poisoned_program(test) else {
        return;
    };
    let p = obj.program("poisoned").unwrap();
    let [poison] = p.poisoned.as_slice() else {
        panic!("{:?}", p.poisoned)
    };
    assert_eq!(p.insns[poison.pc], POISON);
    assert_eq!(
        (poison.kind.as_str(), poison.access.as_str()),
        ("byte_off", "0:0")
    );
    assert_eq!(poison.type_name, "struct task_struct___o");
    let words = FaultCode::CoreRelocation.describe();
    for (input, want) in [(0u32, Some(7u64)), (1, None)] {
        let mut mem = input.to_le_bytes().to_vec();
        let got = interp::run(
            &p.insns,
            &mut mem,
            &HelperTable::new(),
            &mut ExecContext::new(),
            &interp::Options::default(),
        );
        match (want, got) {
            (Some(w), Ok(v)) => assert_eq!(v, w),
            (None, Err(e @ interp::RunError::CoreRelocation { .. })) => {
                assert_eq!(e.pc(), poison.pc);
                assert_eq!(e.to_string(), format!("instruction {}: {words}", poison.pc));
            }
            (w, g) => panic!("interp, input {input}: want {w:?}, got {g:?}"),
        }
        for checked in [true, false] {
            let opts = CodegenOptions {
                checked,
                ..Default::default()
            };
            let jit = JitProgram::compile(&p.insns, obj.endian, &HelperTable::new(), &opts, None)
                .unwrap();
            let mut mem = input.to_le_bytes().to_vec();
            match (want, jit.run(&mut mem, &mut ExecContext::new())) {
                (Some(w), Ok(v)) => assert_eq!(v, w),
                (
                    None,
                    Err(JitError::Fault {
                        pc,
                        code: FaultCode::CoreRelocation,
                        message,
                        ..
                    }),
                ) => {
                    assert_eq!(pc, poison.pc);
                    assert_eq!(message, words);
                }
                (w, g) => panic!("JIT (checked {checked}), input {input}: want {w:?}, got {g:?}"),
            }
        }
    }
}

#[test]
fn aot_object_reports_fault_code_9() {
    let test = "aot_object_reports_fault_code_9";
    let Some(obj) = poisoned_program(test) else {
        return;
    };
    let target = AotTarget::X86_64;
    if let Err(why) = tool_available(&target) {
        skip(test, &why);
        return;
    }
    let p = obj.program("poisoned").unwrap();
    let triple = target_lexicon::Triple::from_str(target.triple).unwrap();
    let object = compile_object(
        &Request {
            insns: &p.insns,
            endian: obj.endian,
            binding: &Binding::object(&[]),
            opts: &CodegenOptions::default(),
            symbol: "bpfc_prog",
            facts: None,
        },
        &triple,
        None,
    )
    .unwrap();
    assert_eq!(
        link_and_run(&target, &object, "bpfc_prog", &0u32.to_le_bytes()).unwrap(),
        7
    );
    match link_and_run(&target, &object, "bpfc_prog", &1u32.to_le_bytes()) {
        Err(AotRunError::Fault { code, pc, .. }) => {
            assert_eq!(code, FaultCode::CoreRelocation as u32);
            assert_eq!(pc as usize, p.poisoned[0].pc);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_broken_program_leaves_the_other_usable() {
    let obj =
        Object::parse(&std::fs::read(elf_fixture_dir().join("one_broken.o")).unwrap()).unwrap();
    let broken = obj.program("broken").unwrap();
    match &broken.error {
        Some(e @ LoadError::UnresolvedExtern { name, section, .. }) => {
            assert_eq!(
                (name.as_str(), section.as_str()),
                ("CONFIG_BPFC_NO_SUCH_OPTION", "syscall")
            );
            assert!(
                e.to_string().contains("no value for this .kconfig extern"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(broken.insns.is_empty());
    assert_eq!(broken.check_loaded(), Err(broken.error.clone().unwrap()));
    let good = obj.program("good").unwrap();
    assert_eq!(good.error, None);
    let r = interp::run(
        &good.insns,
        &mut [],
        &HelperTable::new(),
        &mut ExecContext::new(),
        &interp::Options::default(),
    )
    .unwrap();
    assert_eq!(r, 42);
    // With a value for the option, both load.
    let mut opts = LoadOptions::default();
    opts.kconfig.insert("CONFIG_BPFC_NO_SUCH_OPTION".into(), 5);
    let fixed = load(
        &std::fs::read(elf_fixture_dir().join("one_broken.o")).unwrap(),
        &opts,
    )
    .unwrap();
    assert!(fixed.programs.iter().all(|p| p.error.is_none()));
}
