//! The hypervisor's own GDT and TSS.
//!
//! The bootloader's GDT has no TSS, but VM entry requires a non-null host TR
//! selector (SDM Vol. 3C, 27.2.3 "Checks on Host Segment and Descriptor-Table
//! Registers"), and the TSS is also where the Interrupt Stack Table lives: the
//! double-fault, NMI and machine-check handlers run on stacks of their own, so
//! they work even when the faulting code's stack is unusable.

use spin::Lazy;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slot (index into the TSS's table, 0-based) for the double-fault handler.
pub const DOUBLE_FAULT_IST: u16 = 0;
/// IST slot for the NMI handler.
pub const NMI_IST: u16 = 1;
/// IST slot for the machine-check handler.
pub const MACHINE_CHECK_IST: u16 = 2;

/// Size of each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// One IST stack with a page below it reserved as a guard (unmapped by
/// [`crate::platform::memory::protect_kernel`]).
#[repr(C, align(4096))]
pub struct GuardedStack {
    /// The page that is unmapped: an overflow faults instead of corrupting memory.
    pub guard: [u8; 4096],
    /// The stack itself.
    pub stack: [u8; IST_STACK_SIZE],
}

/// The three IST stacks. Never accessed as data: only their addresses are used.
pub static mut IST_STACKS: [GuardedStack; 3] =
    [const { GuardedStack { guard: [0; 4096], stack: [0; IST_STACK_SIZE] } }; 3];

fn ist_top(index: usize) -> VirtAddr {
    // SAFETY: only the address is taken, no reference to the mutable static is made.
    let stack = unsafe { core::ptr::addr_of!(IST_STACKS[index].stack) };
    VirtAddr::from_ptr(stack) + IST_STACK_SIZE as u64
}

static TSS: Lazy<TaskStateSegment> = Lazy::new(|| {
    let mut tss = TaskStateSegment::new();
    tss.interrupt_stack_table[DOUBLE_FAULT_IST as usize] = ist_top(0);
    tss.interrupt_stack_table[NMI_IST as usize] = ist_top(1);
    tss.interrupt_stack_table[MACHINE_CHECK_IST as usize] = ist_top(2);
    tss
});

/// The selectors of the hypervisor's GDT, which the VMCS host-state area needs.
#[derive(Debug, Clone, Copy)]
pub struct Selectors {
    /// 64-bit code segment.
    pub code: SegmentSelector,
    /// Data segment (for SS, DS, ES).
    pub data: SegmentSelector,
    /// The TSS.
    pub tss: SegmentSelector,
}

static GDT: Lazy<(GlobalDescriptorTable, Selectors)> = Lazy::new(|| {
    let mut gdt = GlobalDescriptorTable::new();
    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss = gdt.append(Descriptor::tss_segment(&TSS));
    (gdt, Selectors { code, data, tss })
});

/// Loads the GDT, reloads every segment register and loads TR.
pub fn init() {
    GDT.0.load();
    let selectors = GDT.1;
    // SAFETY: the selectors come from the GDT just loaded and describe flat
    // 64-bit code/data segments and a valid TSS.
    unsafe {
        CS::set_reg(selectors.code);
        SS::set_reg(selectors.data);
        DS::set_reg(selectors.data);
        ES::set_reg(selectors.data);
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(selectors.tss);
    }
}

/// The selectors loaded by [`init`].
pub fn selectors() -> Selectors {
    GDT.1
}

/// The TSS's linear address (VMCS host TR base).
pub fn tss_base() -> u64 {
    let tss: &TaskStateSegment = &TSS;
    tss as *const TaskStateSegment as u64
}
