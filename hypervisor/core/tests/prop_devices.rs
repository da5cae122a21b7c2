//! Property tests of the virtual 16550A UART ([`hypervisor_core::devices::uart16550`]).
//!
//! Every `IN`/`OUT` a guest makes to its serial port lands in this state
//! machine, in any order and with any value, and the host pushes console
//! input into it. A panic here stops every guest; an input queue that grows
//! past its bound or loses its order corrupts what the guest reads; an LSR
//! that lies about "data ready" makes a polling guest read garbage or hang.
//!
//! The property runs random sequences of port reads and writes (offsets
//! 0 to 9, so also the ports past the UART) and host pushes against a small
//! reference model of the documented behaviour: a FIFO of at most
//! [`INPUT_CAPACITY`] bytes, DLAB routing of offsets 0 and 1, loopback, the
//! overrun flag, and the read-only registers.

mod prop_common;

use std::collections::VecDeque;

use hypervisor_core::devices::uart16550::{
    Uart16550, BASE_BAUD, DATA, IIR_FIFOS_ENABLED, IIR_LINE_STATUS, IIR_NONE, IIR_RECEIVED_DATA, IIR_THR_EMPTY,
    INPUT_CAPACITY, INTERRUPT_ENABLE, INTERRUPT_ID_FIFO_CONTROL, LCR_DLAB, LINE_CONTROL, LINE_STATUS, LSR_DATA_READY,
    LSR_OVERRUN, LSR_THR_EMPTY, LSR_TRANSMITTER_EMPTY, MCR_LOOPBACK, MCR_OUT2, MODEM_CONTROL, MODEM_STATUS,
    REGISTER_COUNT, SCRATCH,
};
use proptest::prelude::*;

/// One step of a random session.
#[derive(Debug, Clone)]
enum Op {
    /// The guest writes `value` to `offset`.
    Write(u16, u8),
    /// The guest reads `offset`.
    Read(u16),
    /// The host queues one byte.
    Push(u8),
    /// The host queues several bytes (stopping at a full queue).
    PushBytes(Vec<u8>),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    // Offsets past the UART's eight registers are part of the test too.
    let offset = prop_oneof![4 => 0u16..REGISTER_COUNT, 1 => REGISTER_COUNT..REGISTER_COUNT + 2, 1 => any::<u16>()];
    // LCR writes toggle DLAB; MCR writes toggle loopback: draw those often.
    let value = prop_oneof![any::<u8>(), Just(LCR_DLAB), Just(0u8), Just(MCR_LOOPBACK | MCR_OUT2)];
    prop_oneof![
        4 => (offset.clone(), value).prop_map(|(offset, value)| Op::Write(offset, value)),
        4 => offset.prop_map(Op::Read),
        2 => any::<u8>().prop_map(Op::Push),
        1 => proptest::collection::vec(any::<u8>(), 0..80).prop_map(Op::PushBytes),
    ]
}

/// The documented behaviour the model keeps track of.
#[derive(Default)]
struct Model {
    input: VecDeque<u8>,
    overrun: bool,
    line_control: u8,
    modem_control: u8,
    interrupt_enable: u8,
    scratch: u8,
    divisor: u16,
}

impl Model {
    fn new() -> Self {
        Model { divisor: 1, ..Model::default() }
    }

    fn dlab(&self) -> bool {
        self.line_control & LCR_DLAB != 0
    }

    fn push(&mut self, byte: u8) -> bool {
        if self.input.len() == INPUT_CAPACITY {
            self.overrun = true;
            false
        } else {
            self.input.push_back(byte);
            true
        }
    }
}

/// Checks the invariants that hold between any two steps.
fn check_invariants(uart: &Uart16550, model: &Model) -> Result<(), TestCaseError> {
    prop_assert!(uart.input_len() <= INPUT_CAPACITY);
    prop_assert_eq!(uart.input_len(), model.input.len());
    let lsr = uart.line_status();
    // The transmitter is always empty; data ready and overrun follow the queue;
    // no other LSR bit is ever set.
    prop_assert_eq!(lsr & (LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY), LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY);
    prop_assert_eq!(lsr & LSR_DATA_READY != 0, !model.input.is_empty());
    prop_assert_eq!(lsr & LSR_OVERRUN != 0, model.overrun);
    prop_assert_eq!(lsr & !(LSR_DATA_READY | LSR_OVERRUN | LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY), 0);
    prop_assert_eq!(uart.divisor(), model.divisor);
    let expected_baud = if model.divisor == 0 { 0 } else { BASE_BAUD / u32::from(model.divisor) };
    prop_assert_eq!(uart.baud_rate(), expected_baud);
    prop_assert_eq!(uart.line_control(), model.line_control);
    // The interrupt line is only driven with OUT2 and a pending interrupt.
    if uart.irq_asserted() {
        prop_assert!(uart.interrupt_pending());
        prop_assert!(model.modem_control & MCR_OUT2 != 0);
    }
    Ok(())
}

proptest! {
    #![proptest_config(prop_common::config(256))]

    /// Random sessions of guest port accesses and host input never panic, keep
    /// the input queue within [`INPUT_CAPACITY`] and in FIFO order, keep LSR
    /// consistent with the queue and the overrun flag, transmit exactly the
    /// THR writes made outside loopback with DLAB clear, and read back every
    /// read/write register as written (MCR and IER masked to their defined
    /// bits). IIR only ever reports one of the four documented identifications.
    #[test]
    fn random_sessions_keep_the_invariants(ops in proptest::collection::vec(op_strategy(), 0..200)) {
        let mut uart = Uart16550::new();
        let mut model = Model::new();
        check_invariants(&uart, &model)?;
        for op in ops {
            match op {
                Op::Push(byte) => {
                    let accepted = uart.push_input(byte);
                    prop_assert_eq!(accepted, model.push(byte));
                }
                Op::PushBytes(bytes) => {
                    let room = INPUT_CAPACITY - model.input.len();
                    let taken = uart.push_input_bytes(&bytes);
                    prop_assert_eq!(taken, bytes.len().min(room));
                    // Stops at a full queue without flagging an overrun.
                    model.input.extend(&bytes[..taken]);
                }
                Op::Write(offset, value) => {
                    let sent = uart.write(offset, value);
                    let loopback = model.modem_control & MCR_LOOPBACK != 0;
                    match offset {
                        DATA if model.dlab() => {
                            model.divisor = (model.divisor & 0xFF00) | u16::from(value);
                            prop_assert_eq!(sent, None);
                        }
                        DATA if loopback => {
                            model.push(value);
                            prop_assert_eq!(sent, None);
                        }
                        DATA => prop_assert_eq!(sent, Some(value)),
                        INTERRUPT_ENABLE if model.dlab() => {
                            model.divisor = (model.divisor & 0x00FF) | (u16::from(value) << 8);
                            prop_assert_eq!(sent, None);
                        }
                        _ => {
                            prop_assert_eq!(sent, None);
                            match offset {
                                INTERRUPT_ENABLE => model.interrupt_enable = value & 0x0F,
                                INTERRUPT_ID_FIFO_CONTROL if value & 2 != 0 => model.input.clear(),
                                LINE_CONTROL => model.line_control = value,
                                MODEM_CONTROL => model.modem_control = value & 0x1F,
                                SCRATCH => model.scratch = value,
                                _ => {}
                            }
                        }
                    }
                }
                Op::Read(offset) => {
                    let pending_before = uart.interrupt_pending();
                    let value = uart.read(offset);
                    match offset {
                        DATA if model.dlab() => prop_assert_eq!(value, model.divisor as u8),
                        DATA => prop_assert_eq!(value, model.input.pop_front().unwrap_or(0)),
                        INTERRUPT_ENABLE if model.dlab() => prop_assert_eq!(value, (model.divisor >> 8) as u8),
                        INTERRUPT_ENABLE => prop_assert_eq!(value, model.interrupt_enable),
                        INTERRUPT_ID_FIFO_CONTROL => {
                            let id = value & !IIR_FIFOS_ENABLED;
                            prop_assert!([IIR_NONE, IIR_LINE_STATUS, IIR_RECEIVED_DATA, IIR_THR_EMPTY].contains(&id), "IIR {:#x}", value);
                            prop_assert_eq!(id != IIR_NONE, pending_before);
                            if id == IIR_LINE_STATUS {
                                prop_assert!(model.overrun && model.interrupt_enable & 4 != 0);
                            }
                            if id == IIR_RECEIVED_DATA {
                                prop_assert!(!model.input.is_empty() && model.interrupt_enable & 1 != 0);
                            }
                        }
                        LINE_CONTROL => prop_assert_eq!(value, model.line_control),
                        MODEM_CONTROL => prop_assert_eq!(value, model.modem_control),
                        LINE_STATUS => {
                            let mut expected = LSR_THR_EMPTY | LSR_TRANSMITTER_EMPTY;
                            if !model.input.is_empty() {
                                expected |= LSR_DATA_READY;
                            }
                            if model.overrun {
                                expected |= LSR_OVERRUN;
                            }
                            prop_assert_eq!(value, expected);
                            // Reading LSR clears the overrun flag.
                            model.overrun = false;
                        }
                        MODEM_STATUS => {
                            if model.modem_control & MCR_LOOPBACK == 0 {
                                prop_assert_eq!(value, 0xB0, "a connected peer");
                            } else {
                                prop_assert_eq!(value & 0x0F, 0, "no delta bits");
                            }
                        }
                        SCRATCH => prop_assert_eq!(value, model.scratch),
                        _ => prop_assert_eq!(value, 0xFF, "offset {} is not the UART's", offset),
                    }
                }
            }
            check_invariants(&uart, &model)?;
        }
    }
}
