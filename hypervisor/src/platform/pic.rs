//! The legacy 8259A interrupt controllers, moved out of the way.
//!
//! The BIOS leaves the master PIC on vectors 8–15, the same vectors as CPU
//! exceptions (IRQ0, the timer, would arrive as vector 8: a "double fault").
//! The hypervisor remaps them to 0x20–0x2F and masks every line: it does not
//! use legacy interrupts itself.

use x86_64::instructions::port::Port;

/// First vector of the master PIC after remapping.
pub const MASTER_VECTOR_BASE: u8 = 0x20;
/// First vector of the slave PIC after remapping.
pub const SLAVE_VECTOR_BASE: u8 = 0x28;

/// Reinitialises both PICs with the vectors above and masks all lines.
pub fn remap_and_mask() {
    // SAFETY: ports 0x20/0x21/0xA0/0xA1 are the 8259A pair on every PC; the
    // sequence is ICW1..ICW4 as the 8259A datasheet prescribes.
    unsafe {
        let mut master_command = Port::<u8>::new(0x20);
        let mut master_data = Port::<u8>::new(0x21);
        let mut slave_command = Port::<u8>::new(0xA0);
        let mut slave_data = Port::<u8>::new(0xA1);
        let mut delay = Port::<u8>::new(0x80);
        let mut wait = || delay.write(0);

        master_command.write(0x11); // ICW1: edge triggered, cascade, ICW4 follows
        wait();
        slave_command.write(0x11);
        wait();
        master_data.write(MASTER_VECTOR_BASE); // ICW2: vector base
        wait();
        slave_data.write(SLAVE_VECTOR_BASE);
        wait();
        master_data.write(0x04); // ICW3: slave on IRQ2
        wait();
        slave_data.write(0x02); // ICW3: cascade identity 2
        wait();
        master_data.write(0x01); // ICW4: 8086 mode
        wait();
        slave_data.write(0x01);
        wait();
        master_data.write(0xFF); // OCW1: mask everything
        slave_data.write(0xFF);
    }
}
