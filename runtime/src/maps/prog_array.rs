//! `BPF_MAP_TYPE_PROG_ARRAY`: slots of programs for tail calls. User space
//! stores programs by id (the kernel takes a program fd and reads back the
//! id); programs only tail-call through it. The slot array holds pointers to
//! each program's [`ProgNative`], so a tail call needs no lock (compiled
//! code reads the slots inline: they are the map's `values`); the map also
//! holds a reference to each program it stores and retires a replaced or
//! removed one through [`rcu`], as runs may still be inside it. Process-local: programs do
//! not outlive their process, so prog arrays cannot be pinned.

use super::error::{MapError, MapResult};
use super::flags::{BPF_ANY, BPF_F_RDONLY_PROG, BPF_F_WRONLY_PROG};
use super::{rcu, MapImpl, MapSpec, NativeLayout};
use crate::abi::ProgNative;
use crate::programs::{self, TailTarget};
use std::any::Any;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex};

pub struct ProgArray {
    slots: Box<[AtomicPtr<ProgNative>]>,
    /// Keeps each stored program alive while it is in a slot.
    owners: Mutex<Vec<Option<Arc<dyn TailTarget>>>>,
    /// The program type all stored programs must share (0: none stored yet).
    prog_type: Mutex<Option<u32>>,
}

impl ProgArray {
    pub fn create(spec: &MapSpec) -> MapResult<ProgArray> {
        if spec.key_size != 4 || spec.value_size != 4 || spec.max_entries == 0 {
            return Err(MapError::invalid(format!(
                "map {}: a prog array needs key_size 4, value_size 4 and max_entries > 0",
                spec.name
            )));
        }
        if spec.flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG) != 0 {
            return Err(MapError::invalid(format!(
                "map {}: prog arrays take no program access flags",
                spec.name
            )));
        }
        let n = spec.max_entries as usize;
        Ok(ProgArray {
            slots: (0..n)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            owners: Mutex::new(vec![None; n]),
            prog_type: Mutex::new(None),
        })
    }

    /// The program in slot `index`.
    pub fn slot(&self, index: u32) -> Option<&ProgNative> {
        let p = self.slots.get(index as usize)?.load(Ordering::Acquire);
        // SAFETY: a non-null slot points at the ProgNative of a program the
        // map keeps alive (`owners`); a program removed from its slot is
        // retired (`rcu::retire`), so it outlives the runs in progress.
        unsafe { p.as_ref() }
    }

    /// The program object in slot `index` (engines that run programs
    /// themselves look up their own program type in it).
    pub fn program(&self, index: u32) -> Option<Arc<dyn TailTarget>> {
        let owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        owners.get(index as usize).cloned().flatten()
    }

    /// Store `prog` in slot `index` (user space and hosts).
    pub fn set(&self, index: u32, prog: Arc<dyn TailTarget>) -> MapResult<()> {
        let i = index as usize;
        if i >= self.slots.len() {
            return Err(MapError::TOO_BIG);
        }
        let ty = prog.native().prog_type;
        {
            let mut t = self.prog_type.lock().unwrap_or_else(|e| e.into_inner());
            match *t {
                Some(have) if have != ty => return Err(MapError::INVAL),
                _ => *t = Some(ty),
            }
        }
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        let native = prog.native() as *const ProgNative as *mut ProgNative;
        self.slots[i].store(native, Ordering::Release);
        if let Some(old) = owners[i].replace(prog) {
            rcu::retire(old);
        }
        Ok(())
    }

    /// Empty slot `index`.
    pub fn clear(&self, index: u32) -> MapResult<()> {
        let i = index as usize;
        if i >= self.slots.len() {
            return Err(MapError::TOO_BIG);
        }
        let mut owners = self.owners.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.slots[i].swap(std::ptr::null_mut(), Ordering::AcqRel);
        // A run that already read the slot (compiled code reads it inline)
        // may still jump into or run the program: it is dropped only after
        // the runs in progress end.
        if let Some(prog) = owners[i].take() {
            rcu::retire(prog);
        }
        if old.is_null() {
            Err(MapError::NOENT)
        } else {
            Ok(())
        }
    }

    fn index(key: &[u8]) -> u32 {
        u32::from_ne_bytes(key[..4].try_into().expect("4-byte key"))
    }
}

impl MapImpl for ProgArray {
    fn lookup(&self, key: Option<&[u8]>, value: &mut [u8], _flags: u64) -> MapResult<()> {
        let p = self
            .slot(ProgArray::index(key.unwrap_or(&[0; 4])))
            .ok_or(MapError::NOENT)?;
        value.copy_from_slice(&p.id.to_ne_bytes());
        Ok(())
    }

    fn update(&self, key: Option<&[u8]>, value: &[u8], flags: u64) -> MapResult<()> {
        if flags != BPF_ANY {
            return Err(MapError::INVAL);
        }
        let index = ProgArray::index(key.unwrap_or(&[0; 4]));
        if index as usize >= self.slots.len() {
            return Err(MapError::TOO_BIG);
        }
        let id = u32::from_ne_bytes(value[..4].try_into().expect("4-byte value"));
        let prog = programs::by_id(id).ok_or(MapError::errno(super::errno::EBADF))?;
        self.set(index, prog)
    }

    fn delete(&self, key: &[u8]) -> MapResult<()> {
        self.clear(ProgArray::index(key))
    }

    fn get_next_key(&self, key: Option<&[u8]>, next: &mut [u8]) -> MapResult<()> {
        let n = self.slots.len() as u32;
        let index = key.map_or(u32::MAX, ProgArray::index);
        let out = if index >= n {
            0
        } else if index == n - 1 {
            return Err(MapError::NOENT);
        } else {
            index + 1
        };
        next.copy_from_slice(&out.to_ne_bytes());
        Ok(())
    }

    fn prog_update(&self, _: &[u8], _: &[u8], _: u64, _: u32) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn prog_delete(&self, _: &[u8]) -> MapResult<()> {
        Err(MapError::INVAL)
    }

    fn native(&self) -> NativeLayout {
        NativeLayout {
            values: self.slots.as_ptr() as usize,
            elem_size: 8,
            cpu_stride: 0,
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::{rcu, Map, MapType};
    use std::sync::atomic::AtomicBool;

    /// A program that records when it is dropped.
    struct Prog {
        native: ProgNative,
        dropped: Arc<AtomicBool>,
    }

    impl Drop for Prog {
        fn drop(&mut self) {
            self.dropped.store(true, Ordering::SeqCst);
        }
    }

    impl TailTarget for Prog {
        fn native(&self) -> &ProgNative {
            &self.native
        }
        fn name(&self) -> &str {
            "prog"
        }
        fn as_any(&self) -> &dyn Any {
            self
        }
        fn into_any_arc(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
            self
        }
    }

    fn prog() -> (Arc<dyn TailTarget>, Arc<AtomicBool>) {
        let dropped = Arc::new(AtomicBool::new(false));
        let p = Prog {
            native: ProgNative {
                func: std::ptr::null(),
                prog: std::ptr::null(),
                id: programs::next_id(),
                prog_type: 6,
            },
            dropped: dropped.clone(),
        };
        (Arc::new(p), dropped)
    }

    /// Compiled code reads slots without the runtime, so a program taken
    /// out of a slot (replaced or deleted) must outlive the runs in
    /// progress: it is freed only after their read-side sections end.
    #[test]
    fn removed_programs_outlive_runs_in_progress() {
        let spec = MapSpec::new("progs", MapType::ProgArray, 4, 4, 2, 0);
        let m = Map::create(&spec).unwrap();
        let arr = m.imp().as_any().downcast_ref::<ProgArray>().unwrap();
        let (a, a_dropped) = prog();
        let (b, b_dropped) = prog();
        arr.set(0, a).unwrap();
        arr.set(1, b).unwrap();
        // A run in progress on another thread, which has read both slots.
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let (end_tx, end_rx) = std::sync::mpsc::channel::<()>();
        let reader = std::thread::spawn(move || {
            let _section = rcu::read_lock();
            entered_tx.send(()).unwrap();
            end_rx.recv().unwrap();
        });
        entered_rx.recv().unwrap();
        let (c, c_dropped) = prog();
        arr.set(0, c).unwrap();
        arr.clear(1).unwrap();
        assert!(arr.slot(1).is_none());
        assert_eq!(
            arr.slot(0).map(|p| p.id),
            Some(arr.program(0).unwrap().native().id)
        );
        assert!(
            !a_dropped.load(Ordering::SeqCst),
            "replaced program freed during a run"
        );
        assert!(
            !b_dropped.load(Ordering::SeqCst),
            "removed program freed during a run"
        );
        end_tx.send(()).unwrap();
        reader.join().unwrap();
        // Other tests of this process may be in sections of their own for
        // a moment: wait for them, within reason.
        let freed = || a_dropped.load(Ordering::SeqCst) && b_dropped.load(Ordering::SeqCst);
        for _ in 0..500 {
            rcu::collect();
            if freed() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(
            freed(),
            "programs taken out of slots are freed after the runs"
        );
        assert!(!c_dropped.load(Ordering::SeqCst));
    }
}
