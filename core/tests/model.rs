//! Property test: random operation sequences against a `VecDeque` model of
//! the byte accounting (run natively and under Miri). The model is
//! `shmlane_fuzz_support::run_ops`, shared with the `ring_ops` fuzz target;
//! it is an integration test because that crate depends on this one.

use proptest::prelude::*;

use shmlane_core::max_message_limit;
use shmlane_fuzz_support::{Op, run_ops};

fn len_strategy(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0),
        Just(1),
        Just(max),
        Just(max - 1),
        0..=max,
        0..=16usize,
        max + 1..max + 9
    ]
}

fn op_strategy(max: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => len_strategy(max).prop_map(Op::TrySend),
        3 => (len_strategy(max), 0..=max + 4).prop_map(|(l, c)| Op::ReserveCommit(l, c)),
        1 => len_strategy(max).prop_map(Op::ReserveAbort),
        2 => proptest::collection::vec(len_strategy(max), 0..6).prop_map(Op::BatchSend),
        5 => (0..=max + 1).prop_map(Op::TryRecv),
        4 => Just(Op::Read),
        2 => (0..6usize).prop_map(Op::BatchRecv),
        1 => Just(Op::CloseProducer),
        1 => Just(Op::CloseConsumer),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 512 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operations_match_a_vecdeque_model(
        capacity in prop_oneof![Just(64usize), Just(128), Just(256)],
        seed_ops in proptest::collection::vec(op_strategy(120), 1..if cfg!(miri) { 25 } else { 120 }),
    ) {
        // Rescale lengths to this capacity's maximum.
        let max = max_message_limit(capacity);
        let fix = |l: usize| if l > 120 { max + (l - 120) } else { l * max / 120 };
        let ops: Vec<Op> = seed_ops.into_iter().map(|op| match op {
            Op::TrySend(l) => Op::TrySend(fix(l)),
            Op::ReserveCommit(l, c) => Op::ReserveCommit(fix(l), fix(c)),
            Op::ReserveAbort(l) => Op::ReserveAbort(fix(l)),
            Op::BatchSend(ls) => Op::BatchSend(ls.into_iter().map(fix).collect()),
            Op::TryRecv(l) => Op::TryRecv(fix(l)),
            other => other,
        }).collect();
        run_ops(capacity, &ops);
    }
}

#[test]
fn model_covers_the_wrap_padding() {
    // A fixed sequence that must pad: sizes chosen against a 64-byte ring.
    run_ops(
        64,
        &[
            Op::TrySend(8),
            Op::TrySend(16),
            Op::Read,
            Op::Read,
            Op::TrySend(24), // padding 24 at 40
            Op::TrySend(0),
            Op::BatchRecv(3),
            Op::TrySend(24),
            Op::CloseProducer,
            Op::Read,
            Op::Read,
        ],
    );
}
