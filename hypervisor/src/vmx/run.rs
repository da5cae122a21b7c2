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
//!
//! **The fast path.** Guests run the null hypercall and CPUID in tight loops,
//! and they are the floor of every exit's cost, so the landing answers them
//! without leaving assembly when [`FastPath::enabled`] says it may and the TSC
//! is still below [`FastPath::deadline`]:
//!
//! - VMCALL with the guest's RAX = 0: the null hypercall, whose result is 0;
//! - CPUID of a (leaf, subleaf) whose filtered answer the ordinary path has
//!   put into [`FastPath::cpuid_cache`] (answers that depend only on the leaf
//!   and subleaf; `vm::exit::cpuid` decides which).
//!
//! Then it moves the guest's RIP past the instruction (VM-exit instruction
//! length, SDM Vol. 3C, 28.2.5), clears STI/MOV-SS blocking as executing an
//! instruction would, counts the exit and its ticks in [`FastPath`], and
//! executes VMRESUME with the guest's registers still in the CPU. Anything
//! else — another reason, a cache miss, a deadline reached, a VMREAD or
//! VMWRITE failure — takes the ordinary path into Rust. The fast-path exits
//! are added to the guest's counters when its time slice ends; they do not
//! enter the ring of recent exits. A CPUID answer goes into the guest's
//! registers only after RIP has moved. (A VMWRITE of the interruptibility
//! state that failed after RIP was moved would make the ordinary path move it
//! again; that cannot happen with a valid current VMCS, whose guest-state
//! fields are always writable.)

use hypervisor_core::exit::ExitReason;
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
/// be true exactly when this VMCS was launched since its last VMCLEAR;
/// `frame` must point to a valid [`GuestFrame`] nothing else accesses until
/// this returns (the fast path reads and writes it while the guest runs).
pub unsafe fn enter_guest(frame: *mut GuestFrame, launched: bool) -> EntryResult {
    // SAFETY: forwarded to the caller.
    match unsafe { vmx_enter(frame, launched as u64) } {
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
/// As for [`enter_guest`]; `frame` must point to a valid, exclusively
/// borrowed [`GuestFrame`] for the whole guest run.
#[unsafe(naked)]
unsafe extern "C" fn vmx_enter(frame: *mut GuestFrame, launched: u64) -> u64 {
    core::arch::naked_asm!(
        // Host callee-saved registers, then the frame pointer on top.
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

/// HOST_RIP: answers a null hypercall on the fast path (see the module
/// docs), or stores the guest's registers and returns 0 from [`vmx_enter`].
/// The CPU loads RIP and RSP from HOST_RIP/HOST_RSP on the exit (SDM Vol. 3C,
/// 28.5 "Loading Host State").
///
/// # Safety
/// Never called: only the CPU jumps here, on a VM exit, with RSP = the
/// HOST_RSP [`vmx_enter`] wrote, i.e. its frame with the [`GuestFrame`]
/// pointer on top.
#[unsafe(naked)]
unsafe extern "C" fn vm_exit_landing() -> ! {
    core::arch::naked_asm!(
        // Scratch registers for the fast path; the guest's values are saved.
        // Stack: [rsp] RDI, +0x08 RSI, +0x10 RDX, +0x18 RCX, +0x20 RAX,
        // +0x28 the frame pointer pushed by vmx_enter.
        "push rax", "push rcx", "push rdx", "push rsi", "push rdi",
        "mov rdi, [rsp + 0x28]",
        "cmp qword ptr [rdi + {enabled}], 0",
        "je 7f",
        "mov ecx, {exit_reason}",
        "vmread rcx, rcx",
        "jbe 7f",
        // Not past the deadline (slice, budget, next timer event). RSI = exit TSC.
        "rdtsc",
        "shl rdx, 32",
        "or rax, rdx",
        "mov rsi, rax",
        "cmp rsi, [rdi + {deadline}]",
        "jae 7f",
        "cmp ecx, {vmcall}",
        "je 20f",
        "cmp ecx, {cpuid}",
        "jne 7f",
        // CPUID: look the (leaf, subleaf) pair up in the cache; a hit puts
        // EAX..EDX (zero-extended, as CPUID writes them) into the guest's registers.
        "mov eax, [rsp + 0x20]",
        "mov edx, [rsp + 0x18]",
        "shl rdx, 32",
        "or rdx, rax",
        "mov ecx, eax",
        "shr ecx, 29",
        "add ecx, eax",
        "and ecx, {cache_mask}",
        "shl ecx, 5",
        "lea rcx, [rdi + rcx + {cache}]",
        "cmp dword ptr [rcx + 8], 0",
        "je 7f",
        "cmp [rcx], rdx",
        "jne 7f",
        // The answer is written only once RIP has moved (below): a failed
        // VMREAD/VMWRITE then leaves the guest's registers as they were.
        "push rcx",
        "lea rcx, [rdi + {cpuid_counters}]",
        "jmp 30f",
        // VMCALL: only the null hypercall (RAX = 0, also its result).
        "20:",
        "cmp qword ptr [rsp + 0x20], 0",
        "jne 7f",
        "push 0",
        "lea rcx, [rdi + {vmcall_counters}]",
        // RIP += the instruction's length; STI/MOV-SS blocking ends with it.
        // Stack: [rsp] the counters, [rsp + 8] the CPUID cache entry or 0.
        "30:",
        "push rcx",
        "mov ecx, {instruction_length}",
        "vmread rax, rcx",
        "jbe 8f",
        "mov ecx, {guest_rip}",
        "vmread rdx, rcx",
        "jbe 8f",
        "add rdx, rax",
        "vmwrite rcx, rdx",
        "jbe 8f",
        "mov ecx, {interruptibility}",
        "vmread rax, rcx",
        "jbe 8f",
        "test al, 3",
        "jz 2f",
        "and rax, -4",
        "vmwrite rcx, rax",
        "jbe 8f",
        "2:",
        "pop rcx",
        "pop rdx",
        // A CPUID hit: EAX..EDX from the cache entry, zero-extended as CPUID
        // writes them (RBX directly: the landing never saved it).
        "test rdx, rdx",
        "jz 4f",
        "mov eax, [rdx + 12]",
        "mov [rsp + 0x20], rax",
        "mov ebx, [rdx + 16]",
        "mov eax, [rdx + 20]",
        "mov [rsp + 0x18], rax",
        "mov eax, [rdx + 24]",
        "mov [rsp + 0x10], rax",
        // Count the exit and its ticks.
        "4:",
        "inc qword ptr [rcx]",
        "rdtsc",
        "shl rdx, 32",
        "or rax, rdx",
        "sub rax, rsi",
        "add [rcx + 8], rax",
        // The guest's registers back, and in.
        "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rax",
        "vmresume",
        // VMRESUME failed (CF or ZF set): store the registers as on an exit
        // (MOV, PUSH, POP and CALL keep the flags) and report the failure.
        "push rdi",
        "mov rdi, [rsp + 8]",
        "call {store}",
        // Drop the guest's RDI and the frame pointer.
        "pop rdi",
        "pop rdi",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
        "mov eax, 1",
        "jc 3f",
        "mov eax, 2",
        "3:",
        "ret",
        // A VMREAD/VMWRITE of the fast path failed: let the ordinary path
        // (which reads the same fields) report it.
        "8:",
        "pop rcx",
        "pop rcx",
        // The ordinary path: the guest's scratch registers back, then store them all.
        "7:",
        "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rax",
        "push rdi",
        "mov rdi, [rsp + 8]",
        "call {store}",
        "pop rdi",
        "pop rdi",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbx", "pop rbp",
        "xor eax, eax",
        "ret",
        enabled = const FAST + core::mem::offset_of!(FastPath, enabled),
        deadline = const FAST + core::mem::offset_of!(FastPath, deadline),
        vmcall_counters = const FAST + core::mem::offset_of!(FastPath, vmcall),
        cpuid_counters = const FAST + core::mem::offset_of!(FastPath, cpuid),
        cache = const FAST + core::mem::offset_of!(FastPath, cpuid_cache),
        cache_mask = const CPUID_CACHE_ENTRIES - 1,
        exit_reason = const VmcsField::ExitReason.encoding() as u64,
        instruction_length = const VmcsField::ExitInstructionLength.encoding() as u64,
        guest_rip = const VmcsField::GuestRip.encoding() as u64,
        interruptibility = const VmcsField::GuestInterruptibilityState.encoding() as u64,
        vmcall = const ExitReason::Vmcall as u32,
        cpuid = const ExitReason::Cpuid as u32,
        store = sym store_guest_registers,
    )
}

/// Stores the guest's general registers into the frame at RDI; the guest's
/// RDI is on the stack above the return address (`[rsp + 8]`). Keeps RFLAGS
/// (only MOVs), so a failed VMRESUME's CF/ZF survive it.
///
/// # Safety
/// Only called from [`vm_exit_landing`], with RDI = the frame pointer.
#[unsafe(naked)]
unsafe extern "C" fn store_guest_registers() {
    core::arch::naked_asm!(
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
        "mov rax, [rsp + 8]",
        "mov [rdi + 0x28], rax",
        "ret",
    )
}

/// Offset of the fast-path block in a [`GuestFrame`].
const FAST: usize = core::mem::offset_of!(GuestFrame, fast);

/// Entries of the CPUID cache (a power of two: the assembly masks the index).
pub const CPUID_CACHE_ENTRIES: usize = 8;

/// An exit kind's fast-path count.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastCounters {
    /// Exits answered by the fast path.
    pub exits: u64,
    /// TSC ticks they took, from the exit to the VMRESUME.
    pub ticks: u64,
}

/// One cached CPUID answer (32 bytes: the assembly indexes with a shift).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuidCacheEntry {
    /// Leaf in bits 31:0, subleaf in bits 63:32.
    pub key: u64,
    /// Non-zero when the entry holds an answer.
    pub valid: u32,
    /// The answer.
    pub eax: u32,
    /// The answer.
    pub ebx: u32,
    /// The answer.
    pub ecx: u32,
    /// The answer.
    pub edx: u32,
    _pad: u32,
}

/// What the landing's fast path needs from the VM code, right after the
/// [`GuestRegisters`] block (see the module docs). `#[repr(C)]`: the assembly
/// uses its offsets.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPath {
    /// Non-zero when the fast path may answer (no tracing or stepping, no
    /// interrupt waiting to be injected, no flush needed before entry).
    pub enabled: u64,
    /// The TSC at which the exit path must look (slice end, budget, next
    /// timer event): at or after it, the ordinary path runs.
    pub deadline: u64,
    /// Null hypercalls answered.
    pub vmcall: FastCounters,
    /// CPUIDs answered from the cache.
    pub cpuid: FastCounters,
    /// CPUID answers that depend only on the leaf and subleaf, filled by the
    /// ordinary path (`vm::exit::cpuid`); indexed by `(leaf + (leaf >> 29)) & 7`.
    pub cpuid_cache: [CpuidCacheEntry; CPUID_CACHE_ENTRIES],
}

impl FastPath {
    /// Remembers a CPUID answer for the fast path.
    pub fn remember_cpuid(&mut self, leaf: u32, subleaf: u32, answer: [u32; 4]) {
        let index = (leaf.wrapping_add(leaf >> 29) as usize) & (CPUID_CACHE_ENTRIES - 1);
        self.cpuid_cache[index] = CpuidCacheEntry {
            key: (u64::from(subleaf) << 32) | u64::from(leaf),
            valid: 1,
            eax: answer[0],
            ebx: answer[1],
            ecx: answer[2],
            edx: answer[3],
            _pad: 0,
        };
    }
}

/// The registers and the fast-path block, as [`vmx_enter`] receives them.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuestFrame {
    /// The general registers.
    pub registers: GuestRegisters,
    /// The landing's fast path.
    pub fast: FastPath,
}

/// Compile-time check that the assembly's offsets match the struct.
const _: () = {
    assert!(core::mem::offset_of!(GuestFrame, fast) == 0x78);
    assert!(core::mem::size_of::<CpuidCacheEntry>() == 32);
    assert!(core::mem::offset_of!(CpuidCacheEntry, valid) == 8);
    assert!(core::mem::offset_of!(CpuidCacheEntry, eax) == 12);
    assert!(core::mem::offset_of!(CpuidCacheEntry, edx) == 24);
    assert!(core::mem::offset_of!(FastCounters, ticks) == 8);
    assert!(core::mem::offset_of!(GuestRegisters, rdi) == 0x28);
    assert!(core::mem::offset_of!(GuestRegisters, r15) == 0x70);
};
