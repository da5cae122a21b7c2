//! Decoding the instructions guests use on memory-mapped device registers.
//!
//! When a guest touches a page the hypervisor keeps out of its EPT (the local
//! APIC at `0xFEE0_0000`, for instance), the CPU stops with an EPT violation.
//! The exit tells the guest-physical address and whether it was a read or a
//! write (Intel SDM Vol. 3C 28.2.3.2, Table 28-7), but not the data, the size
//! or the register. To emulate the access the kernel reads the instruction
//! bytes at the guest's RIP (through its guest page walker) and hands them to
//! [`decode`], which tells:
//!
//! * whether it is a load into a register or a store from a register or an
//!   immediate ([`MmioAccess`]),
//! * how many bytes it accesses ([`MmioInstruction::size`]),
//! * how long the instruction is, to advance RIP past it ([`MmioInstruction::length`]).
//!
//! The memory address itself is not computed: the exit's guest-physical
//! address already is it. The decoder only walks the ModRM, SIB and
//! displacement bytes to find the instruction's length.
//!
//! # What is supported
//!
//! The forms compilers and hand-written drivers emit for device registers
//! (SDM Vol. 2 "MOV", "MOVZX", "MOVSX"):
//!
//! | opcode | form | access |
//! |---|---|---|
//! | `88 /r` | `mov r/m8, r8` | store a byte register |
//! | `89 /r` | `mov r/m16/32/64, r` | store a register |
//! | `8A /r` | `mov r8, r/m8` | load a byte register |
//! | `8B /r` | `mov r, r/m16/32/64` | load a register |
//! | `C6 /0 ib` | `mov r/m8, imm8` | store an immediate |
//! | `C7 /0 iw/id` | `mov r/m16/32/64, imm16/32` | store an immediate (imm32 sign-extended for 64-bit) |
//! | `A0`–`A3` | `mov al/ax/eax/rax, moffs` and back | load or store the accumulator at an absolute address |
//! | `0F B6`/`0F B7` | `movzx r, r/m8` / `r/m16` | load and zero-extend |
//! | `0F BE`/`0F BF` | `movsx r, r/m8` / `r/m16` | load and sign-extend |
//!
//! Prefixes (SDM Vol. 2 2.1.1, 2.2.1): `66` (operand size), `67` (address size,
//! which changes the ModRM/SIB/displacement layout and the moffs width),
//! segment overrides `26 2E 36 3E 64 65` (accepted; the address is known
//! already), and REX in 64-bit mode. A REX prefix counts only when it comes
//! right before the opcode (SDM Vol. 2 2.2.1); an earlier one is ignored.
//!
//! Rejected with a [`DecodeError`]: `F0` LOCK (the CPU raises #UD for LOCK on
//! MOV, so a LOCKed instruction here cannot be one of the forms above; the
//! kernel should inject #UD or stop the guest), `F2`/`F3` (REP: string
//! instructions are not emulated), every other opcode, register-only ModRM
//! forms (they cannot have touched memory), and instructions longer than 15
//! bytes (SDM Vol. 2 2.3.11).

use core::fmt;

/// The longest legal x86 instruction, in bytes (SDM Vol. 2 2.3.11).
pub const MAX_INSTRUCTION_LENGTH: usize = 15;

/// The processor mode the instruction was fetched in: it sets the default
/// operand and address sizes (SDM Vol. 1 3.6, Vol. 2 2.2.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeSize {
    /// Real mode, virtual-8086 mode or a 16-bit code segment (CS.D = 0).
    Bits16,
    /// A 32-bit code segment (CS.D = 1), including compatibility mode.
    Bits32,
    /// 64-bit mode (CS.L = 1): REX prefixes exist, addresses are 64-bit.
    Bits64,
}

/// A general-purpose register, numbered as in ModRM.reg/rm extended by REX
/// (SDM Vol. 2 Table 2-2, 3.1.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Gpr {
    /// 0: RAX / EAX / AX / AL.
    Rax = 0,
    /// 1: RCX.
    Rcx = 1,
    /// 2: RDX.
    Rdx = 2,
    /// 3: RBX.
    Rbx = 3,
    /// 4: RSP.
    Rsp = 4,
    /// 5: RBP.
    Rbp = 5,
    /// 6: RSI.
    Rsi = 6,
    /// 7: RDI.
    Rdi = 7,
    /// 8: R8.
    R8 = 8,
    /// 9: R9.
    R9 = 9,
    /// 10: R10.
    R10 = 10,
    /// 11: R11.
    R11 = 11,
    /// 12: R12.
    R12 = 12,
    /// 13: R13.
    R13 = 13,
    /// 14: R14.
    R14 = 14,
    /// 15: R15.
    R15 = 15,
}

impl Gpr {
    /// The register with encoding `index` (only the low 4 bits count).
    pub fn from_index(index: u8) -> Gpr {
        const ALL: [Gpr; 16] = [
            Gpr::Rax,
            Gpr::Rcx,
            Gpr::Rdx,
            Gpr::Rbx,
            Gpr::Rsp,
            Gpr::Rbp,
            Gpr::Rsi,
            Gpr::Rdi,
            Gpr::R8,
            Gpr::R9,
            Gpr::R10,
            Gpr::R11,
            Gpr::R12,
            Gpr::R13,
            Gpr::R14,
            Gpr::R15,
        ];
        ALL[usize::from(index & 0xF)]
    }

    /// The register's encoding, 0–15.
    pub fn index(self) -> u8 {
        self as u8
    }
}

/// A register operand: which register, and for byte accesses whether it is
/// one of the legacy high-byte registers AH, CH, DH, BH (bits 15:8 of RAX,
/// RCX, RDX, RBX).
///
/// Byte register encodings 4–7 mean AH, CH, DH, BH without a REX prefix and
/// SPL, BPL, SIL, DIL with any REX prefix (SDM Vol. 2 3.1.1.1, Table 3-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Register {
    /// The 64-bit register that holds the operand.
    pub gpr: Gpr,
    /// The operand is bits 15:8 of `gpr` (AH, CH, DH or BH).
    pub high_byte: bool,
}

impl Register {
    /// A register operand in the register's low bits.
    pub fn low(gpr: Gpr) -> Register {
        Register { gpr, high_byte: false }
    }
}

/// How a loaded value reaches its destination register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extend {
    /// MOV: the register's low `size` bytes take the value. A 32-bit
    /// destination zero-extends to 64 bits; 8- and 16-bit destinations leave
    /// the other bits alone (SDM Vol. 1 3.4.1.1).
    None,
    /// MOVZX: the value is zero-extended to `destination_size` bytes, which
    /// are then written with the MOV rules above.
    Zero {
        /// The destination register's operand size: 2, 4 or 8.
        destination_size: u8,
    },
    /// MOVSX: the value is sign-extended to `destination_size` bytes, which
    /// are then written with the MOV rules above.
    Sign {
        /// The destination register's operand size: 2, 4 or 8.
        destination_size: u8,
    },
}

/// Where a store's data comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    /// The low `size` bytes of a register (or AH..BH for a high-byte register).
    Register(Register),
    /// An immediate, already sign-extended to the access size (a 64-bit
    /// store of imm32 `0xFFFF_FFFF` is `0xFFFF_FFFF_FFFF_FFFF`) and zero above it.
    Immediate(u64),
}

/// The direction and register side of the access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmioAccess {
    /// The instruction reads the device register into `destination`.
    Load {
        /// The register written.
        destination: Register,
        /// How the value is widened into it.
        extend: Extend,
    },
    /// The instruction writes `source` to the device register.
    Store {
        /// The data written.
        source: Operand,
    },
}

/// A decoded instruction that accesses memory-mapped I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioInstruction {
    /// Load or store, and the register or immediate involved.
    pub access: MmioAccess,
    /// Bytes accessed in memory: 1, 2, 4 or 8.
    pub size: u8,
    /// Length of the instruction in bytes, to add to RIP after emulating it.
    pub length: u8,
}

impl MmioInstruction {
    /// For a load: the destination register's new value, given its old value
    /// and the `value` read from the device (see [`merge_load`]). `None` for a store.
    pub fn load_result(&self, old: u64, value: u64) -> Option<u64> {
        match self.access {
            MmioAccess::Load { destination, extend } => {
                Some(merge_load(old, value, self.size, extend, destination.high_byte))
            }
            MmioAccess::Store { .. } => None,
        }
    }

    /// For a store: the value to write to the device. `register_value` gives
    /// a register's full 64-bit value when the source is a register. `None`
    /// for a load.
    pub fn store_data(&self, register_value: impl FnOnce(Gpr) -> u64) -> Option<u64> {
        match self.access {
            MmioAccess::Store { source: Operand::Immediate(value) } => Some(value),
            MmioAccess::Store { source: Operand::Register(register) } => {
                Some(store_value(register_value(register.gpr), self.size, register.high_byte))
            }
            MmioAccess::Load { .. } => None,
        }
    }
}

/// An opcode, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A one-byte opcode.
    OneByte(u8),
    /// A two-byte opcode `0F xx`.
    TwoByte(u8),
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Opcode::OneByte(byte) => write!(f, "{byte:#04X}"),
            Opcode::TwoByte(byte) => write!(f, "0x0F {byte:#04X}"),
        }
    }
}

/// Why an instruction could not be decoded as an MMIO access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes ended before the instruction did.
    Truncated {
        /// How many bytes were given (at most [`MAX_INSTRUCTION_LENGTH`] are looked at).
        available: u8,
    },
    /// The instruction would be longer than 15 bytes (the CPU raises #GP).
    TooLong,
    /// An opcode this decoder does not emulate.
    Unsupported {
        /// The opcode.
        opcode: Opcode,
    },
    /// A supported opcode with a ModRM.reg opcode extension other than /0
    /// (`C6`/`C7` /1–/7 are not MOVs).
    UnsupportedExtension {
        /// The opcode.
        opcode: Opcode,
        /// ModRM bits 5:3.
        extension: u8,
    },
    /// The ModRM byte names a register, not memory (mod = 11), so the
    /// instruction cannot have caused an MMIO exit.
    RegisterOperand {
        /// The opcode.
        opcode: Opcode,
    },
    /// A LOCK prefix on a MOV (the CPU raises #UD for it).
    LockPrefix {
        /// The opcode.
        opcode: Opcode,
    },
    /// A REPNE/REP prefix (`F2`/`F3`): string instructions are not emulated.
    RepeatPrefix {
        /// The prefix byte.
        prefix: u8,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            DecodeError::Truncated { available } => {
                write!(f, "instruction at an MMIO address ends early: {available} bytes are not enough")
            }
            DecodeError::TooLong => write!(f, "instruction at an MMIO address is longer than 15 bytes"),
            DecodeError::Unsupported { opcode } => write!(f, "unsupported instruction {opcode} at an MMIO address"),
            DecodeError::UnsupportedExtension { opcode, extension } => {
                write!(f, "unsupported instruction {opcode} /{extension} at an MMIO address")
            }
            DecodeError::RegisterOperand { opcode } => {
                write!(f, "instruction {opcode} has no memory operand, so it cannot access an MMIO address")
            }
            DecodeError::LockPrefix { opcode } => {
                write!(f, "LOCK prefix on instruction {opcode} at an MMIO address (invalid opcode)")
            }
            DecodeError::RepeatPrefix { prefix } => {
                write!(f, "unsupported {prefix:#04X} (REP) prefix on an instruction at an MMIO address")
            }
        }
    }
}

/// Reads instruction bytes, never past [`MAX_INSTRUCTION_LENGTH`].
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Cursor<'_> {
    fn next(&mut self) -> Result<u8, DecodeError> {
        if self.position >= MAX_INSTRUCTION_LENGTH {
            return Err(DecodeError::TooLong);
        }
        let byte = *self.bytes.get(self.position).ok_or(DecodeError::Truncated { available: self.available() })?;
        self.position += 1;
        Ok(byte)
    }

    /// Reads a little-endian value of `count` (at most 8) bytes.
    fn little_endian(&mut self, count: u8) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for index in 0..count {
            value |= u64::from(self.next()?) << (8 * u32::from(index));
        }
        Ok(value)
    }

    fn available(&self) -> u8 {
        // At most MAX_INSTRUCTION_LENGTH, so it fits.
        self.bytes.len().min(MAX_INSTRUCTION_LENGTH) as u8
    }
}

/// The prefixes in front of an opcode.
#[derive(Debug, Clone, Copy, Default)]
struct Prefixes {
    operand_size: bool,
    address_size: bool,
    lock: bool,
    /// The REX byte, if one came right before the opcode (64-bit mode only).
    rex: Option<u8>,
}

impl Prefixes {
    fn rex_bit(&self, mask: u8) -> bool {
        self.rex.is_some_and(|rex| rex & mask != 0)
    }
    fn rex_w(&self) -> bool {
        self.rex_bit(0b1000)
    }
    /// REX.R: extends ModRM.reg.
    fn rex_r(&self) -> u8 {
        if self.rex_bit(0b0100) {
            8
        } else {
            0
        }
    }
}

/// Decodes the instruction at the start of `bytes` (the bytes at the guest's
/// RIP; only the first 15 are looked at) in the given mode.
pub fn decode(bytes: &[u8], mode: CodeSize) -> Result<MmioInstruction, DecodeError> {
    let mut cursor = Cursor { bytes, position: 0 };
    let mut prefixes = Prefixes::default();
    // Legacy prefixes in any order, then at most one REX right before the
    // opcode (SDM Vol. 2 2.1.1, 2.2.1).
    let opcode_byte = loop {
        let byte = cursor.next()?;
        match byte {
            0x66 => prefixes.operand_size = true,
            0x67 => prefixes.address_size = true,
            0x26 | 0x2E | 0x36 | 0x3E | 0x64 | 0x65 => {}
            0xF0 => prefixes.lock = true,
            0xF2 | 0xF3 => return Err(DecodeError::RepeatPrefix { prefix: byte }),
            0x40..=0x4F if mode == CodeSize::Bits64 => {
                prefixes.rex = Some(byte);
                continue;
            }
            _ => break byte,
        }
        // A legacy prefix after a REX makes the REX meaningless.
        prefixes.rex = None;
    };

    // Operand size (SDM Vol. 1 3.6, Vol. 2 Table 2-4 and 3.6 of Vol. 1):
    // REX.W beats 66, and 66 toggles between 16 and 32 bits.
    let operand_size: u8 = match (mode, prefixes.operand_size) {
        (CodeSize::Bits64, _) if prefixes.rex_w() => 8,
        (CodeSize::Bits16, false) | (CodeSize::Bits32 | CodeSize::Bits64, true) => 2,
        _ => 4,
    };
    // Address size: 67 toggles 16/32 in legacy modes, 64/32 in 64-bit mode.
    let address_size: u8 = match (mode, prefixes.address_size) {
        (CodeSize::Bits16, false) | (CodeSize::Bits32, true) => 2,
        (CodeSize::Bits64, false) => 8,
        _ => 4,
    };

    let (opcode, instruction) = if opcode_byte == 0x0F {
        let second = cursor.next()?;
        let opcode = Opcode::TwoByte(second);
        let (size, signed) = match second {
            0xB6 => (1, false),
            0xB7 => (2, false),
            0xBE => (1, true),
            0xBF => (2, true),
            _ => return Err(DecodeError::Unsupported { opcode }),
        };
        let reg = memory_operand(&mut cursor, opcode, address_size)?;
        let destination = Register::low(Gpr::from_index(reg | prefixes.rex_r()));
        let extend = if signed {
            Extend::Sign { destination_size: operand_size }
        } else {
            Extend::Zero { destination_size: operand_size }
        };
        (opcode, (MmioAccess::Load { destination, extend }, size))
    } else {
        let opcode = Opcode::OneByte(opcode_byte);
        let instruction = match opcode_byte {
            0x88..=0x8B => {
                let byte_sized = opcode_byte & 1 == 0;
                let reg = memory_operand(&mut cursor, opcode, address_size)? | prefixes.rex_r();
                let (register, size) = if byte_sized {
                    (byte_register(reg, prefixes.rex.is_some()), 1)
                } else {
                    (Register::low(Gpr::from_index(reg)), operand_size)
                };
                let access = if opcode_byte & 2 == 0 {
                    MmioAccess::Store { source: Operand::Register(register) }
                } else {
                    MmioAccess::Load { destination: register, extend: Extend::None }
                };
                (access, size)
            }
            0xC6 | 0xC7 => {
                let extension = memory_operand(&mut cursor, opcode, address_size)?;
                if extension != 0 {
                    return Err(DecodeError::UnsupportedExtension { opcode, extension });
                }
                let size = if opcode_byte == 0xC6 { 1 } else { operand_size };
                // The immediate is at most 32 bits; a 64-bit store sign-extends it.
                let immediate = cursor.little_endian(size.min(4))?;
                let value = if size == 8 { immediate as u32 as i32 as i64 as u64 } else { immediate };
                (MmioAccess::Store { source: Operand::Immediate(value) }, size)
            }
            0xA0..=0xA3 => {
                // moffs: an absolute address as wide as the address size
                // (SDM Vol. 2 "MOV", note on moffs); no ModRM.
                cursor.little_endian(address_size)?;
                let size = if opcode_byte & 1 == 0 { 1 } else { operand_size };
                let accumulator = Register::low(Gpr::Rax);
                let access = if opcode_byte & 2 == 0 {
                    MmioAccess::Load { destination: accumulator, extend: Extend::None }
                } else {
                    MmioAccess::Store { source: Operand::Register(accumulator) }
                };
                (access, size)
            }
            _ => return Err(DecodeError::Unsupported { opcode }),
        };
        (opcode, instruction)
    };

    if prefixes.lock {
        return Err(DecodeError::LockPrefix { opcode });
    }
    let (access, size) = instruction;
    // The cursor stops at 15, so the length fits.
    Ok(MmioInstruction { access, size, length: cursor.position as u8 })
}

/// The byte register with encoding `reg` (0–15): without REX, 4–7 are AH, CH,
/// DH, BH; with any REX they are SPL, BPL, SIL, DIL (SDM Vol. 2 3.1.1.1).
fn byte_register(reg: u8, has_rex: bool) -> Register {
    if !has_rex && (4..8).contains(&reg) {
        Register { gpr: Gpr::from_index(reg - 4), high_byte: true }
    } else {
        Register::low(Gpr::from_index(reg))
    }
}

/// Reads a ModRM byte that must name memory, and the SIB and displacement
/// bytes that follow it. Returns ModRM.reg (bits 5:3, without REX.R).
///
/// 16-bit addressing (SDM Vol. 2 Table 2-1): no SIB; mod 00 rm 110 is a bare
/// disp16; mod 01 adds disp8, mod 10 disp16.
///
/// 32/64-bit addressing (SDM Vol. 2 Tables 2-2, 2-3, 2.2.1.6): rm 100 brings a
/// SIB byte; mod 00 with rm 101 is disp32 (RIP-relative in 64-bit mode), and
/// mod 00 with SIB base 101 is disp32 with no base; mod 01 adds disp8, mod 10
/// disp32. REX.B does not change these special cases, which look only at the
/// 3-bit fields.
fn memory_operand(cursor: &mut Cursor<'_>, opcode: Opcode, address_size: u8) -> Result<u8, DecodeError> {
    let modrm = cursor.next()?;
    let mode = modrm >> 6;
    let reg = (modrm >> 3) & 0b111;
    let rm = modrm & 0b111;
    if mode == 0b11 {
        return Err(DecodeError::RegisterOperand { opcode });
    }
    let displacement: u8 = if address_size == 2 {
        match mode {
            0b00 if rm == 0b110 => 2,
            0b00 => 0,
            0b01 => 1,
            _ => 2,
        }
    } else {
        let base = if rm == 0b100 { cursor.next()? & 0b111 } else { rm };
        match mode {
            0b00 if base == 0b101 => 4,
            0b00 => 0,
            0b01 => 1,
            _ => 4,
        }
    };
    cursor.little_endian(displacement)?;
    Ok(reg)
}

/// All-ones in the low `size` bytes (any size other than 1, 2, 4 means 8).
fn size_mask(size: u8) -> u64 {
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        4 => 0xFFFF_FFFF,
        _ => u64::MAX,
    }
}

/// Writes `value` as a `size`-byte register operand into a register that
/// held `old`: 8/16-bit writes keep the other bits, a 32-bit write
/// zero-extends to 64 bits (SDM Vol. 1 3.4.1.1), a 64-bit write replaces all.
fn write_register(old: u64, value: u64, size: u8) -> u64 {
    match size {
        1 | 2 => (old & !size_mask(size)) | (value & size_mask(size)),
        4 => value & 0xFFFF_FFFF,
        _ => value,
    }
}

/// The destination register's new value after a load: `old` is its value
/// before, `value` what the device returned (only its low `size` bytes
/// count), `size` the access size (1, 2, 4 or 8; anything else counts as 8),
/// and `extend` / `high_byte` come from the decoded [`MmioAccess::Load`].
///
/// * `high_byte` (AH..BH): the byte goes to bits 15:8, the rest is kept.
/// * [`Extend::None`]: 8/16-bit loads keep the other bits, a 32-bit load
///   zero-extends to 64 bits.
/// * [`Extend::Zero`] / [`Extend::Sign`]: the value is widened to the
///   destination size, then written with the same rules.
pub fn merge_load(old: u64, value: u64, size: u8, extend: Extend, high_byte: bool) -> u64 {
    let value = value & size_mask(size);
    if high_byte {
        return (old & !0xFF00) | ((value & 0xFF) << 8);
    }
    match extend {
        Extend::None => write_register(old, value, size),
        Extend::Zero { destination_size } => write_register(old, value, destination_size),
        Extend::Sign { destination_size } => {
            let sign_bit = 1u64 << (8 * u32::from(bytes_of(size)) - 1);
            let extended = if value & sign_bit != 0 { value | !size_mask(size) } else { value };
            write_register(old, extended, destination_size)
        }
    }
}

/// `size` as 1, 2, 4 or 8 bytes (anything else counts as 8).
fn bytes_of(size: u8) -> u8 {
    match size {
        1 | 2 | 4 => size,
        _ => 8,
    }
}

/// The data a register store writes: the low `size` bytes of the register's
/// 64-bit value, or bits 15:8 for a high-byte register (AH..BH).
pub fn store_value(register_value: u64, size: u8, high_byte: bool) -> u64 {
    if high_byte {
        (register_value >> 8) & 0xFF
    } else {
        register_value & size_mask(size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    use CodeSize::{Bits16, Bits32, Bits64};

    fn load(gpr: Gpr, size: u8, length: u8) -> MmioInstruction {
        MmioInstruction {
            access: MmioAccess::Load { destination: Register::low(gpr), extend: Extend::None },
            size,
            length,
        }
    }

    fn load_high(gpr: Gpr, length: u8) -> MmioInstruction {
        MmioInstruction {
            access: MmioAccess::Load { destination: Register { gpr, high_byte: true }, extend: Extend::None },
            size: 1,
            length,
        }
    }

    fn load_extended(gpr: Gpr, size: u8, extend: Extend, length: u8) -> MmioInstruction {
        MmioInstruction { access: MmioAccess::Load { destination: Register::low(gpr), extend }, size, length }
    }

    fn store(gpr: Gpr, size: u8, length: u8) -> MmioInstruction {
        MmioInstruction { access: MmioAccess::Store { source: Operand::Register(Register::low(gpr)) }, size, length }
    }

    fn store_high(gpr: Gpr, length: u8) -> MmioInstruction {
        MmioInstruction {
            access: MmioAccess::Store { source: Operand::Register(Register { gpr, high_byte: true }) },
            size: 1,
            length,
        }
    }

    fn store_immediate(value: u64, size: u8, length: u8) -> MmioInstruction {
        MmioInstruction { access: MmioAccess::Store { source: Operand::Immediate(value) }, size, length }
    }

    fn check(table: &[(&str, CodeSize, &[u8], MmioInstruction)]) {
        for (assembly, mode, bytes, expected) in table {
            assert_eq!(decode(bytes, *mode), Ok(*expected), "{assembly} ({mode:?})");
            assert_eq!(usize::from(expected.length), bytes.len(), "{assembly}: the table entry is one instruction");
            // Trailing bytes (the next instruction) change nothing.
            let mut longer = std::vec::Vec::from(*bytes);
            longer.extend_from_slice(&[0x90; 16]);
            assert_eq!(decode(&longer, *mode), Ok(*expected), "{assembly} with trailing bytes");
            // Every prefix of the encoding is truncated.
            for cut in 0..bytes.len() {
                assert_eq!(
                    decode(&bytes[..cut], *mode),
                    Err(DecodeError::Truncated { available: cut as u8 }),
                    "{assembly} cut to {cut} bytes"
                );
            }
        }
    }

    #[test]
    fn long_mode_moves() {
        use Gpr::*;
        #[rustfmt::skip]
        let table: &[(&str, CodeSize, &[u8], MmioInstruction)] = &[
            ("mov eax, [rbx]", Bits64, &[0x8B, 0x03], load(Rax, 4, 2)),
            ("mov rax, [rbx]", Bits64, &[0x48, 0x8B, 0x03], load(Rax, 8, 3)),
            ("mov ax, [rbx]", Bits64, &[0x66, 0x8B, 0x03], load(Rax, 2, 3)),
            ("mov ecx, [rdi+0x300]", Bits64, &[0x8B, 0x8F, 0x00, 0x03, 0x00, 0x00], load(Rcx, 4, 6)),
            ("mov edx, [rsi+0x20]", Bits64, &[0x8B, 0x56, 0x20], load(Rdx, 4, 3)),
            ("mov r9d, [rbx]", Bits64, &[0x44, 0x8B, 0x0B], load(R9, 4, 3)),
            ("mov r15, [rbx]", Bits64, &[0x4C, 0x8B, 0x3B], load(R15, 8, 3)),
            ("mov eax, [r13] (mod 01, disp8 0)", Bits64, &[0x41, 0x8B, 0x45, 0x00], load(Rax, 4, 4)),
            ("mov eax, [r12] (SIB)", Bits64, &[0x41, 0x8B, 0x04, 0x24], load(Rax, 4, 4)),
            ("mov r8, [r9+r10]", Bits64, &[0x4F, 0x8B, 0x04, 0x11], load(R8, 8, 4)),
            ("mov [rdi+0xb0], eax", Bits64, &[0x89, 0x87, 0xB0, 0x00, 0x00, 0x00], store(Rax, 4, 6)),
            ("mov [rbx], r11", Bits64, &[0x4C, 0x89, 0x1B], store(R11, 8, 3)),
            ("mov [rbx], si", Bits64, &[0x66, 0x89, 0x33], store(Rsi, 2, 3)),
            // ModRM forms: RIP-relative, SIB without base, SIB with disp8/disp32.
            ("mov [rip+0x1000], eax", Bits64, &[0x89, 0x05, 0x00, 0x10, 0x00, 0x00], store(Rax, 4, 6)),
            ("mov eax, [eip+0x10]", Bits64, &[0x67, 0x8B, 0x05, 0x10, 0x00, 0x00, 0x00], load(Rax, 4, 7)),
            ("mov eax, [0xfee000b0] (SIB, no base, no index)", Bits64,
                &[0x8B, 0x04, 0x25, 0xB0, 0x00, 0xE0, 0xFE], load(Rax, 4, 7)),
            ("mov eax, [rcx*4+0x10] (SIB, no base)", Bits64,
                &[0x8B, 0x04, 0x8D, 0x10, 0x00, 0x00, 0x00], load(Rax, 4, 7)),
            ("mov eax, [r13+rcx*4] (SIB base 101 with REX.B, mod 01)", Bits64,
                &[0x41, 0x8B, 0x44, 0x8D, 0x00], load(Rax, 4, 5)),
            ("mov eax, [rbx+rcx*2+0x10]", Bits64, &[0x8B, 0x44, 0x4B, 0x10], load(Rax, 4, 4)),
            ("mov eax, [rbx+rcx*8+0x12345678]", Bits64,
                &[0x8B, 0x84, 0xCB, 0x78, 0x56, 0x34, 0x12], load(Rax, 4, 7)),
            ("mov eax, [ebx] (67)", Bits64, &[0x67, 0x8B, 0x03], load(Rax, 4, 3)),
            ("mov eax, fs:[rbx]", Bits64, &[0x64, 0x8B, 0x03], load(Rax, 4, 3)),
            ("mov eax, gs:[rbx] with ds, es, ss, cs overrides too", Bits64,
                &[0x3E, 0x26, 0x36, 0x2E, 0x65, 0x8B, 0x03], load(Rax, 4, 7)),
            // A REX before a legacy prefix is ignored: this is `mov ax, [rbx]`.
            ("rex.w; o16 mov ax, [rbx]", Bits64, &[0x48, 0x66, 0x8B, 0x03], load(Rax, 2, 4)),
            // REX.W beats 66.
            ("o16 mov rax, [rbx]", Bits64, &[0x66, 0x48, 0x8B, 0x03], load(Rax, 8, 4)),
            // The last REX counts.
            ("rex; rex.w mov rax, [rbx]", Bits64, &[0x40, 0x48, 0x8B, 0x03], load(Rax, 8, 4)),
        ];
        check(table);
    }

    #[test]
    fn byte_registers_follow_the_rex_rule() {
        use Gpr::*;
        #[rustfmt::skip]
        let table: &[(&str, CodeSize, &[u8], MmioInstruction)] = &[
            ("mov al, [rbx]", Bits64, &[0x8A, 0x03], load(Rax, 1, 2)),
            ("mov bl, [rbx]", Bits64, &[0x8A, 0x1B], load(Rbx, 1, 2)),
            ("mov ah, [rbx]", Bits64, &[0x8A, 0x23], load_high(Rax, 2)),
            ("mov ch, [rbx]", Bits64, &[0x8A, 0x2B], load_high(Rcx, 2)),
            ("mov dh, [rbx]", Bits64, &[0x8A, 0x33], load_high(Rdx, 2)),
            ("mov bh, [rbx]", Bits64, &[0x8A, 0x3B], load_high(Rbx, 2)),
            ("mov spl, [rbx]", Bits64, &[0x40, 0x8A, 0x23], load(Rsp, 1, 3)),
            ("mov dil, [rbx]", Bits64, &[0x40, 0x8A, 0x3B], load(Rdi, 1, 3)),
            ("mov r12b, [rbx]", Bits64, &[0x44, 0x8A, 0x23], load(R12, 1, 3)),
            ("mov [rbx], bh", Bits64, &[0x88, 0x3B], store_high(Rbx, 2)),
            ("mov [rbx], ah", Bits64, &[0x88, 0x23], store_high(Rax, 2)),
            ("mov [rbx], dil", Bits64, &[0x40, 0x88, 0x3B], store(Rdi, 1, 3)),
            ("mov [r8], bpl (REX.B only)", Bits64, &[0x41, 0x88, 0x28], store(Rbp, 1, 3)),
            ("mov [rbx], r15b", Bits64, &[0x44, 0x88, 0x3B], store(R15, 1, 3)),
            ("mov [ebx], ch (32-bit)", Bits32, &[0x88, 0x2B], store_high(Rcx, 2)),
            // REX.W does not widen a byte move.
            ("rex.w mov [rbx], sil", Bits64, &[0x48, 0x88, 0x33], store(Rsi, 1, 3)),
        ];
        check(table);
    }

    #[test]
    fn immediate_stores() {
        #[rustfmt::skip]
        let table: &[(&str, CodeSize, &[u8], MmioInstruction)] = &[
            ("mov dword [rdi+0x300], 0x4000", Bits64,
                &[0xC7, 0x87, 0x00, 0x03, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00], store_immediate(0x4000, 4, 10)),
            ("mov dword [rax], 0xffffffff", Bits64, &[0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF],
                store_immediate(0xFFFF_FFFF, 4, 6)),
            ("mov qword [rax], -1", Bits64, &[0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0xFF],
                store_immediate(u64::MAX, 8, 7)),
            ("mov qword [rax], 0x7fffffff", Bits64, &[0x48, 0xC7, 0x00, 0xFF, 0xFF, 0xFF, 0x7F],
                store_immediate(0x7FFF_FFFF, 8, 7)),
            ("mov word [rax], 0x1234", Bits64, &[0x66, 0xC7, 0x00, 0x34, 0x12], store_immediate(0x1234, 2, 5)),
            ("mov byte [rax], 0x80", Bits64, &[0xC6, 0x00, 0x80], store_immediate(0x80, 1, 3)),
            ("mov byte [rax+0x10], 7", Bits64, &[0xC6, 0x40, 0x10, 0x07], store_immediate(7, 1, 4)),
            ("mov dword [rip+0x100], 1", Bits64,
                &[0xC7, 0x05, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00], store_immediate(1, 4, 10)),
            ("mov dword [ebx+0xb0], 0 (32-bit)", Bits32,
                &[0xC7, 0x83, 0xB0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], store_immediate(0, 4, 10)),
            // The longest supported form: 15 bytes.
            ("mov dword fs:[r8+rbx*1+0x12345678], 0x9abcdef0 with 4 prefixes", Bits64,
                &[0x64, 0x3E, 0x2E, 0x41, 0xC7, 0x84, 0x18, 0x78, 0x56, 0x34, 0x12, 0xF0, 0xDE, 0xBC, 0x9A],
                store_immediate(0x9ABC_DEF0, 4, 15)),
        ];
        check(table);
    }

    #[test]
    fn zero_and_sign_extending_loads() {
        use Gpr::*;
        let zero = |destination_size| Extend::Zero { destination_size };
        let sign = |destination_size| Extend::Sign { destination_size };
        #[rustfmt::skip]
        let table: &[(&str, CodeSize, &[u8], MmioInstruction)] = &[
            ("movzx eax, byte [rbx]", Bits64, &[0x0F, 0xB6, 0x03], load_extended(Rax, 1, zero(4), 3)),
            ("movzx eax, word [rbx]", Bits64, &[0x0F, 0xB7, 0x03], load_extended(Rax, 2, zero(4), 3)),
            ("movzx r10, word [rbx]", Bits64, &[0x4C, 0x0F, 0xB7, 0x13], load_extended(R10, 2, zero(8), 4)),
            ("movzx ax, byte [rbx]", Bits64, &[0x66, 0x0F, 0xB6, 0x03], load_extended(Rax, 1, zero(2), 4)),
            // Reg 4 of MOVZX is ESP even without REX: the destination is never a byte register.
            ("movzx esp, byte [rbx]", Bits64, &[0x0F, 0xB6, 0x23], load_extended(Rsp, 1, zero(4), 3)),
            ("movzx ecx, byte [rip+0x10]", Bits64, &[0x0F, 0xB6, 0x0D, 0x10, 0x00, 0x00, 0x00],
                load_extended(Rcx, 1, zero(4), 7)),
            ("movsx eax, byte [rbx]", Bits64, &[0x0F, 0xBE, 0x03], load_extended(Rax, 1, sign(4), 3)),
            ("movsx rdx, word [rbx]", Bits64, &[0x48, 0x0F, 0xBF, 0x13], load_extended(Rdx, 2, sign(8), 4)),
            ("movzx eax, byte [bx] (16-bit)", Bits16, &[0x66, 0x0F, 0xB6, 0x07], load_extended(Rax, 1, zero(4), 4)),
            ("movzx ax, byte [bx] (16-bit)", Bits16, &[0x0F, 0xB6, 0x07], load_extended(Rax, 1, zero(2), 3)),
        ];
        check(table);
    }

    #[test]
    fn accumulator_moffs_forms() {
        use Gpr::*;
        #[rustfmt::skip]
        let table: &[(&str, CodeSize, &[u8], MmioInstruction)] = &[
            ("mov [0xfee000b0], eax (32-bit)", Bits32, &[0xA3, 0xB0, 0x00, 0xE0, 0xFE], store(Rax, 4, 5)),
            ("mov eax, [0xfee00020] (32-bit)", Bits32, &[0xA1, 0x20, 0x00, 0xE0, 0xFE], load(Rax, 4, 5)),
            ("mov al, [0xfee00020] (32-bit)", Bits32, &[0xA0, 0x20, 0x00, 0xE0, 0xFE], load(Rax, 1, 5)),
            ("mov [0xfee00020], al (32-bit)", Bits32, &[0xA2, 0x20, 0x00, 0xE0, 0xFE], store(Rax, 1, 5)),
            ("mov [0xfee00020], ax (32-bit)", Bits32, &[0x66, 0xA3, 0x20, 0x00, 0xE0, 0xFE], store(Rax, 2, 6)),
            ("mov eax, [0x0020] (32-bit, a16)", Bits32, &[0x67, 0xA1, 0x20, 0x00], load(Rax, 4, 4)),
            ("mov eax, [0xfee000b0] (64-bit moffs)", Bits64,
                &[0xA1, 0xB0, 0x00, 0xE0, 0xFE, 0x00, 0x00, 0x00, 0x00], load(Rax, 4, 9)),
            ("mov rax, [0xfee000b0] (64-bit moffs)", Bits64,
                &[0x48, 0xA1, 0xB0, 0x00, 0xE0, 0xFE, 0x00, 0x00, 0x00, 0x00], load(Rax, 8, 10)),
            ("mov [0xfee000b0], al (64-bit moffs)", Bits64,
                &[0xA2, 0xB0, 0x00, 0xE0, 0xFE, 0x00, 0x00, 0x00, 0x00], store(Rax, 1, 9)),
            ("mov [0xfee000b0], eax (64-bit, a32)", Bits64, &[0x67, 0xA3, 0xB0, 0x00, 0xE0, 0xFE], store(Rax, 4, 6)),
            // REX.B does not redirect the accumulator.
            ("rex.b mov [moffs64], eax", Bits64,
                &[0x41, 0xA3, 0xB0, 0x00, 0xE0, 0xFE, 0x00, 0x00, 0x00, 0x00], store(Rax, 4, 10)),
            ("mov ax, [0x0020] (16-bit)", Bits16, &[0xA1, 0x20, 0x00], load(Rax, 2, 3)),
            ("mov al, [0x00b0] (16-bit)", Bits16, &[0xA0, 0xB0, 0x00], load(Rax, 1, 3)),
            ("mov [0xfee000b0], eax (16-bit, o32 a32)", Bits16,
                &[0x66, 0x67, 0xA3, 0xB0, 0x00, 0xE0, 0xFE], store(Rax, 4, 7)),
        ];
        check(table);
    }

    #[test]
    fn legacy_mode_moves_and_16_bit_addressing() {
        use Gpr::*;
        #[rustfmt::skip]
        let table: &[(&str, CodeSize, &[u8], MmioInstruction)] = &[
            ("mov eax, [0xfee00020] (32-bit, mod 00 rm 101 is absolute)", Bits32,
                &[0x8B, 0x05, 0x20, 0x00, 0xE0, 0xFE], load(Rax, 4, 6)),
            ("mov ebx, [ecx+edx*4+8] (32-bit)", Bits32, &[0x8B, 0x5C, 0x91, 0x08], load(Rbx, 4, 4)),
            ("mov ax, [ebx] (32-bit)", Bits32, &[0x66, 0x8B, 0x03], load(Rax, 2, 3)),
            ("mov ax, [bx] (32-bit, o16 a16)", Bits32, &[0x66, 0x67, 0x8B, 0x07], load(Rax, 2, 4)),
            ("mov eax, [bp+0x10] (32-bit, a16)", Bits32, &[0x67, 0x8B, 0x46, 0x10], load(Rax, 4, 4)),
            ("mov ah, [ebx] (32-bit)", Bits32, &[0x8A, 0x23], load_high(Rax, 2)),
            ("mov ax, [bx+si] (16-bit)", Bits16, &[0x8B, 0x00], load(Rax, 2, 2)),
            ("mov ax, [0x0020] (16-bit, mod 00 rm 110)", Bits16, &[0x8B, 0x06, 0x20, 0x00], load(Rax, 2, 4)),
            ("mov ax, [bp+si+0x12] (16-bit)", Bits16, &[0x8B, 0x42, 0x12], load(Rax, 2, 3)),
            ("mov ax, [bp+0] (16-bit)", Bits16, &[0x8B, 0x46, 0x00], load(Rax, 2, 3)),
            ("mov ax, [bx+0x1234] (16-bit)", Bits16, &[0x8B, 0x87, 0x34, 0x12], load(Rax, 2, 4)),
            ("mov eax, [bx] (16-bit, o32)", Bits16, &[0x66, 0x8B, 0x07], load(Rax, 4, 3)),
            ("mov [di], dx (16-bit)", Bits16, &[0x89, 0x15], store(Rdx, 2, 2)),
            // In 16-bit addressing rm 100 is [si]: no SIB byte follows.
            ("mov ax, [si] (16-bit)", Bits16, &[0x8B, 0x04], load(Rax, 2, 2)),
            ("mov word [di], 0x1234 (16-bit)", Bits16, &[0xC7, 0x05, 0x34, 0x12], store_immediate(0x1234, 2, 4)),
            ("mov dword [di], 0x12345678 (16-bit, o32)", Bits16,
                &[0x66, 0xC7, 0x05, 0x78, 0x56, 0x34, 0x12], store_immediate(0x1234_5678, 4, 7)),
            ("mov eax, [ebx+ecx*4] (16-bit, o32 a32)", Bits16, &[0x66, 0x67, 0x8B, 0x04, 0x8B], load(Rax, 4, 5)),
            ("mov byte es:[bx], 1 (16-bit)", Bits16, &[0x26, 0xC6, 0x07, 0x01], store_immediate(1, 1, 4)),
        ];
        check(table);
    }

    #[test]
    fn rex_bytes_are_inc_dec_outside_long_mode() {
        // 0x48 is `dec eax` in 32-bit mode.
        assert_eq!(
            decode(&[0x48, 0x8B, 0x03], Bits32),
            Err(DecodeError::Unsupported { opcode: Opcode::OneByte(0x48) })
        );
        assert_eq!(decode(&[0x40], Bits16), Err(DecodeError::Unsupported { opcode: Opcode::OneByte(0x40) }));
        // In 64-bit mode a lone REX is a truncated instruction.
        assert_eq!(decode(&[0x48], Bits64), Err(DecodeError::Truncated { available: 1 }));
    }

    #[test]
    fn every_error_path() {
        let cases: &[(&str, CodeSize, &[u8], DecodeError)] = &[
            ("nothing", Bits64, &[], DecodeError::Truncated { available: 0 }),
            ("opcode only", Bits64, &[0x8B], DecodeError::Truncated { available: 1 }),
            ("half a disp32", Bits64, &[0x8B, 0x05, 0x00, 0x10], DecodeError::Truncated { available: 4 }),
            ("no SIB", Bits64, &[0x8B, 0x04], DecodeError::Truncated { available: 2 }),
            ("half an imm32", Bits64, &[0xC7, 0x00, 0x00], DecodeError::Truncated { available: 3 }),
            ("0F only", Bits64, &[0x0F], DecodeError::Truncated { available: 1 }),
            ("cpuid", Bits64, &[0x0F, 0xA2], DecodeError::Unsupported { opcode: Opcode::TwoByte(0xA2) }),
            ("add [rbx], eax", Bits64, &[0x01, 0x03], DecodeError::Unsupported { opcode: Opcode::OneByte(0x01) }),
            ("movsd", Bits64, &[0xA5], DecodeError::Unsupported { opcode: Opcode::OneByte(0xA5) }),
            ("mov eax, ebx", Bits64, &[0x8B, 0xC3], DecodeError::RegisterOperand { opcode: Opcode::OneByte(0x8B) }),
            (
                "movzx eax, bl",
                Bits64,
                &[0x0F, 0xB6, 0xC3],
                DecodeError::RegisterOperand { opcode: Opcode::TwoByte(0xB6) },
            ),
            (
                "mov eax, 1 (C7 /0 to a register)",
                Bits64,
                &[0xC7, 0xC0, 0x01, 0x00, 0x00, 0x00],
                DecodeError::RegisterOperand { opcode: Opcode::OneByte(0xC7) },
            ),
            (
                "C7 /1",
                Bits64,
                &[0xC7, 0x08, 0x00, 0x00, 0x00, 0x00],
                DecodeError::UnsupportedExtension { opcode: Opcode::OneByte(0xC7), extension: 1 },
            ),
            (
                "C6 /7",
                Bits32,
                &[0xC6, 0x38, 0x00],
                DecodeError::UnsupportedExtension { opcode: Opcode::OneByte(0xC6), extension: 7 },
            ),
            (
                "lock mov [rbx], eax",
                Bits64,
                &[0xF0, 0x89, 0x03],
                DecodeError::LockPrefix { opcode: Opcode::OneByte(0x89) },
            ),
            (
                "lock add [rbx], eax",
                Bits64,
                &[0xF0, 0x01, 0x03],
                DecodeError::Unsupported { opcode: Opcode::OneByte(0x01) },
            ),
            ("rep movsd", Bits64, &[0xF3, 0xA5], DecodeError::RepeatPrefix { prefix: 0xF3 }),
            ("repne prefix", Bits32, &[0xF2, 0x8B, 0x03], DecodeError::RepeatPrefix { prefix: 0xF2 }),
        ];
        for (assembly, mode, bytes, expected) in cases {
            assert_eq!(decode(bytes, *mode), Err(*expected), "{assembly}");
        }
    }

    #[test]
    fn fifteen_bytes_at_most() {
        // 13 prefixes + `mov eax, [rbx]` = 15 bytes: fine.
        let mut bytes = [0x3E; 16];
        bytes[13] = 0x8B;
        bytes[14] = 0x03;
        assert_eq!(decode(&bytes[..15], Bits64), Ok(load(Gpr::Rax, 4, 15)));
        // 14 prefixes + `mov eax, [rbx]` = 16 bytes: too long, however many bytes are given.
        let mut bytes = [0x3E; 16];
        bytes[14] = 0x8B;
        bytes[15] = 0x03;
        assert_eq!(decode(&bytes, Bits64), Err(DecodeError::TooLong));
        assert_eq!(decode(&bytes[..15], Bits64), Err(DecodeError::TooLong));
        // Only prefixes: too long once 15 are seen, truncated before.
        assert_eq!(decode(&[0x66; 20], Bits32), Err(DecodeError::TooLong));
        assert_eq!(decode(&[0x66; 14], Bits32), Err(DecodeError::Truncated { available: 14 }));
        // An immediate that would end past byte 15.
        let mut bytes = [0x3E; 15];
        bytes[10] = 0xC7;
        bytes[11] = 0x00;
        assert_eq!(decode(&bytes, Bits32), Err(DecodeError::TooLong));
    }

    #[test]
    fn errors_read_well() {
        let cases = [
            (
                DecodeError::Unsupported { opcode: Opcode::TwoByte(0xA2) },
                "unsupported instruction 0x0F 0xA2 at an MMIO address",
            ),
            (
                DecodeError::Unsupported { opcode: Opcode::OneByte(0x01) },
                "unsupported instruction 0x01 at an MMIO address",
            ),
            (
                DecodeError::UnsupportedExtension { opcode: Opcode::OneByte(0xC7), extension: 1 },
                "unsupported instruction 0xC7 /1 at an MMIO address",
            ),
            (
                DecodeError::RegisterOperand { opcode: Opcode::OneByte(0x8B) },
                "instruction 0x8B has no memory operand, so it cannot access an MMIO address",
            ),
            (
                DecodeError::LockPrefix { opcode: Opcode::OneByte(0x89) },
                "LOCK prefix on instruction 0x89 at an MMIO address (invalid opcode)",
            ),
            (
                DecodeError::RepeatPrefix { prefix: 0xF3 },
                "unsupported 0xF3 (REP) prefix on an instruction at an MMIO address",
            ),
            (
                DecodeError::Truncated { available: 3 },
                "instruction at an MMIO address ends early: 3 bytes are not enough",
            ),
            (DecodeError::TooLong, "instruction at an MMIO address is longer than 15 bytes"),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
    }

    #[test]
    fn merge_load_follows_the_register_write_rules() {
        let old = 0x1111_2222_3333_4444;
        // MOV: 32-bit zero-extends, 8/16-bit keep the rest, 64-bit replaces.
        assert_eq!(merge_load(u64::MAX, 0x1234_5678, 4, Extend::None, false), 0x1234_5678);
        assert_eq!(merge_load(old, 0xABCD, 2, Extend::None, false), 0x1111_2222_3333_ABCD);
        assert_eq!(merge_load(old, 0xAB, 1, Extend::None, false), 0x1111_2222_3333_44AB);
        assert_eq!(merge_load(old, 0x0123_4567_89AB_CDEF, 8, Extend::None, false), 0x0123_4567_89AB_CDEF);
        // Only the accessed bytes of the value count.
        assert_eq!(merge_load(0, 0xFFFF_FFFF_1234, 2, Extend::None, false), 0x1234);
        assert_eq!(merge_load(old, 0xFFFF_FFFF_1234_5678, 4, Extend::None, false), 0x1234_5678);
        // AH..BH: bits 15:8.
        assert_eq!(merge_load(old, 0xAB, 1, Extend::None, true), 0x1111_2222_3333_AB44);
        assert_eq!(merge_load(old, 0x12AB, 1, Extend::None, true), 0x1111_2222_3333_AB44);
        // MOVZX.
        assert_eq!(merge_load(u64::MAX, 0x80, 1, Extend::Zero { destination_size: 4 }, false), 0x80);
        assert_eq!(merge_load(u64::MAX, 0x80, 1, Extend::Zero { destination_size: 2 }, false), 0xFFFF_FFFF_FFFF_0080);
        assert_eq!(merge_load(u64::MAX, 0x8000, 2, Extend::Zero { destination_size: 8 }, false), 0x8000);
        // MOVSX.
        assert_eq!(merge_load(u64::MAX, 0x80, 1, Extend::Sign { destination_size: 4 }, false), 0xFFFF_FF80);
        assert_eq!(merge_load(0, 0x8000, 2, Extend::Sign { destination_size: 8 }, false), 0xFFFF_FFFF_FFFF_8000);
        assert_eq!(merge_load(0, 0x7F, 1, Extend::Sign { destination_size: 8 }, false), 0x7F);
        assert_eq!(merge_load(old, 0xFE, 1, Extend::Sign { destination_size: 2 }, false), 0x1111_2222_3333_FFFE);
    }

    #[test]
    fn instruction_helpers_apply_loads_and_produce_store_data() {
        let mov_ah = decode(&[0x8A, 0x23], Bits64).unwrap();
        assert_eq!(mov_ah.load_result(0xFFFF, 0x12), Some(0x12FF));
        assert_eq!(mov_ah.store_data(|_| 0), None);
        let movzx = decode(&[0x0F, 0xB6, 0x03], Bits64).unwrap();
        assert_eq!(movzx.load_result(u64::MAX, 0x1FF), Some(0xFF));

        let store_bh = decode(&[0x88, 0x3B], Bits64).unwrap();
        assert_eq!(store_bh.store_data(|gpr| if gpr == Gpr::Rbx { 0xABCD } else { 0 }), Some(0xAB));
        assert_eq!(store_bh.load_result(0, 0), None);
        let store_eax = decode(&[0x89, 0x03], Bits64).unwrap();
        assert_eq!(store_eax.store_data(|_| 0x1111_2222_3333_4444), Some(0x3333_4444));
        let store_immediate = decode(&[0x48, 0xC7, 0x00, 0xFE, 0xFF, 0xFF, 0xFF], Bits64).unwrap();
        assert_eq!(store_immediate.store_data(|_| 0), Some(0xFFFF_FFFF_FFFF_FFFE));
        assert_eq!(store_value(0x1234_5678, 2, false), 0x5678);
        assert_eq!(store_value(0x1234_5678, 1, true), 0x56);
        assert_eq!(store_value(u64::MAX, 8, false), u64::MAX);
    }

    #[test]
    fn gpr_indices_round_trip() {
        for index in 0..16 {
            assert_eq!(Gpr::from_index(index).index(), index);
        }
        assert_eq!(Gpr::from_index(0x13), Gpr::Rbx);
    }
}
