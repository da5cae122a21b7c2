//! Entering the guest and coming back: the only assembly in the VMX code.
//!
//! [`enter_guest`] saves the host's callee-saved registers, records the stack
//! pointer as the VMCS host RSP, loads the guest's general registers and
//! executes VMLAUNCH (first entry after VMCLEAR) or VMRESUME (every later entry;
//! SDM Vol. 3C, 27.1 "Basic VM-Entry Checks": the launch state must match).
//!
//! When the guest exits, the CPU loads the host state from the VMCS (SDM Vol. 3C,
//! 28.5 "Loading Host State"): RIP = [`vm_exit_landing`], RSP = the value
//! recorded above, with the guest's general registers still in the CPU. The
//! landing stores them into the [`GuestRegisters`] block and returns from
//! `enter_guest` as if it were an ordinary call. RSP, RIP and RFLAGS of the guest
//! live in the VMCS, not here.

use hypervisor_core::vmcs_field::VmcsField;

/// The guest's general registers that the VMCS does not hold, in the order the
/// assembly below stores them (byte offsets in the comments).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestRegisters {
    /// 0x00
    pub rax: u64,
    /// 0x08
    pub rbx: u64,
    /// 0x10
    pub rcx: u64,
    /// 0x18
    pub rdx: u64,
    /// 0x20
    pub rsi: u64,
    /// 0x28
    pub rdi: u64,
    /// 0x30
    pub rbp: u64,
    /// 0x38
    pub r8: u64,
    /// 0x40
    pub r9: u64,
    /// 0x48
    pub r10: u64,
    /// 0x50
    pub r11: u64,
    /// 0x58
    pub r12: u64,
    /// 0x60
    pub r13: u64,
    /// 0x68
    pub r14: u64,
    /// 0x70
    pub r15: u64,
}

impl GuestRegisters {
    /// EDX:EAX as one 64-bit value (the operand of WRMSR and XSETBV).
    #[inline(always)]
    pub fn edx_eax(&self) -> u64 {
        (self.rdx << 32) | (self.rax & 0xFFFF_FFFF)
    }

    /// The register a 4-bit GPR number in an exit qualification names
    /// (0 = RAX … 15 = R15, in the SDM's encoding; 4 = RSP lives in the VMCS).
    pub fn by_number(&self, number: u8, guest_rsp: u64) -> u64 {
        match number & 0xF {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            4 => guest_rsp,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            _ => self.r15,
        }
    }

    /// Writes the register a 4-bit GPR number names; `false` for 4 (RSP,
    /// which lives in the VMCS: the caller writes GUEST_RSP instead).
    pub fn set_by_number(&mut self, number: u8, value: u64) -> bool {
        let register = match number & 0xF {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => return false,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        };
        *register = value;
        true
    }
}

/// How a VM entry attempt ended, as the assembly reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryResult {
    /// The guest ran and a VM exit brought us back (the exit reason says why;
    /// bit 31 of it marks a VM entry that failed *after* loading guest state).
    Exited,
    /// VMLAUNCH/VMRESUME failed with VMfailInvalid (no current VMCS).
    FailInvalid,
    /// VMLAUNCH/VMRESUME failed with VMfailValid: the VM-instruction error field says why.
    FailValid,
}

/// Runs the guest of the current VMCS until its next VM exit.
///
/// # Safety
/// A VMCS must be current, with its host-state area describing this CPU's
/// state and HOST_RIP = [`vm_exit_landing`] (see [`host_rip`]); `launched` must
/// be true exactly when this VMCS was launched since its last VMCLEAR.
pub unsafe fn enter_guest(registers: &mut GuestRegisters, launched: bool) -> EntryResult {
    // SAFETY: forwarded to the caller.
    match unsafe { vmx_enter(registers, launched as u64) } {
        0 => EntryResult::Exited,
        1 => EntryResult::FailInvalid,
        _ => EntryResult::FailValid,
    }
}

/// The address the CPU jumps to on every VM exit (the VMCS's HOST_RIP).
pub fn host_rip() -> u64 {
    vm_exit_landing as *const () as u64
}

const HOST_RSP_ENCODING: u64 = VmcsField::HostRsp.encoding() as u64;

/// VMLAUNCH or VMRESUME (SDM Vol. 3C, 31.3 "VMLAUNCH/VMRESUME—Launch/Resume
/// Virtual Machine"). Returns 0 after a VM exit, 1 for VMfailInvalid, 2 for
/// VMfailValid.
///
/// # Safety
/// As for [`enter_guest`]; `registers` must point to a valid, exclusively
/// borrowed [`GuestRegisters`] for the whole guest run.
#[unsafe(naked)]
unsafe extern "C" fn vmx_enter(registers: *mut GuestRegisters, launched: u64) -> u64 {
    core::arch::naked_asm!(
        // Host callee-saved registers, then the registers pointer on top.
        "push rbp", "push rbx", "push r12", "push r13", "push r14", "push r15",
        "push rdi",
        // HOST_RSP = this stack pointer: the landing finds everything above it.
        "mov rax, {host_rsp}",
        "vmwrite rax, rsp",
        // Flags from this test select VMLAUNCH or VMRESUME; the MOVs keep them.
        "test rsi, rsi",
        "mov rax, [rdi + 0x00]", "mov rbx, [rdi + 0x08]", "mov rcx, [rdi + 0x10]",
        "mov rdx, [rdi + 0x18]", "mov rsi, [rdi + 0x20]", "mov rbp, [rdi + 0x30]",
        "mov r8,  [rdi + 0x38]", "mov r9,  [rdi + 0x40]", "mov r10, [rdi + 0x48]",
        "mov r11, [rdi + 0x50]", "mov r12, [rdi + 0x58]", "mov r13, [rdi + 0x60]",
        "mov r14, [rdi + 0x68]", "mov r15, [rdi + 0x70]",
        "mov rdi, [rdi + 0x28]",
        "jnz 2f",
        "vmlaunch",
        "jmp 3f",
        "2:",
        "vmresume",
        // Only reached when the entry failed: CF=1 VMfailInvalid, ZF=1 VMfailValid
        // (SDM Vol. 3C, 31.2 "Conventions").
        "3:",
        "mov eax, 1",
        "jc 4f",
        "mov eax, 2",
        "4:",
        "pop rdi",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
        "ret",
        host_rsp = const HOST_RSP_ENCODING,
    )
}

/// HOST_RIP: stores the guest's registers and returns 0 from [`vmx_enter`].
/// The CPU loads RIP and RSP from HOST_RIP/HOST_RSP on the exit (SDM Vol. 3C,
/// 28.5 "Loading Host State").
///
/// # Safety
/// Never called: only the CPU jumps here, on a VM exit, with RSP = the
/// HOST_RSP [`vmx_enter`] wrote, i.e. its frame with the registers pointer on top.
#[unsafe(naked)]
unsafe extern "C" fn vm_exit_landing() -> ! {
    core::arch::naked_asm!(
        // [rsp] is the registers pointer pushed by vmx_enter.
        "push rdi",
        "mov rdi, [rsp + 8]",
        "mov [rdi + 0x00], rax",
        "mov [rdi + 0x08], rbx",
        "mov [rdi + 0x10], rcx",
        "mov [rdi + 0x18], rdx",
        "mov [rdi + 0x20], rsi",
        "mov [rdi + 0x30], rbp",
        "mov [rdi + 0x38], r8",
        "mov [rdi + 0x40], r9",
        "mov [rdi + 0x48], r10",
        "mov [rdi + 0x50], r11",
        "mov [rdi + 0x58], r12",
        "mov [rdi + 0x60], r13",
        "mov [rdi + 0x68], r14",
        "mov [rdi + 0x70], r15",
        "pop rax",
        "mov [rdi + 0x28], rax",
        "pop rdi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "xor eax, eax",
        "ret",
    )
}

/// Compile-time check that the assembly's offsets match the struct.
const _: () = {
    assert!(core::mem::offset_of!(GuestRegisters, rdi) == 0x28);
    assert!(core::mem::offset_of!(GuestRegisters, r15) == 0x70);
};
