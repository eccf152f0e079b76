//! Any sequence of handshake fragments to two reassemblers of one source and
//! one of another, sharing a budget: no panic, each stays within its own cap,
//! the budget within its limit and share per source, and everything held goes
//! back to the budget when the reassemblers go (RFC 6347 §4.2.3).
#![no_main]
use std::sync::Arc;

use _core::reassembly::HandshakeReassembler;
use _core::reassembly_budget::ReassemblyBudget;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(budget) = ReassemblyBudget::new(12000, Some(8000)) else {
        return;
    };
    let budget = Arc::new(budget);
    let sources: [&[u8]; 3] = [b"a", b"a", b"b"];
    let mut machines: Vec<HandshakeReassembler> = Vec::new();
    for source in sources {
        let Ok(r) = HandshakeReassembler::new(4096, 8192, 0) else {
            return;
        };
        machines.push(r.with_budget(budget.clone(), Some(source.to_vec())));
    }
    // Split the input into fragments on a length prefix byte; its top two
    // bits pick the reassembler.
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let which = usize::from(n >> 6) % machines.len();
        let n = usize::from(n & 0x3F).saturating_mul(4).min(tail.len());
        let (fragment, next) = tail.split_at(n);
        if let Some(r) = machines.get_mut(which) {
            let _ = r.push(fragment);
            assert!(r.buffered_bytes() <= 8192);
        }
        let held: u64 = machines.iter().map(HandshakeReassembler::buffered_bytes).sum();
        assert_eq!(budget.used(), held);
        assert!(budget.used() <= 12000);
        assert!(budget.held_by(b"a") <= 8000 && budget.held_by(b"b") <= 8000);
        rest = next;
    }
    drop(machines);
    assert_eq!((budget.used(), budget.sources()), (0, 0));
});
