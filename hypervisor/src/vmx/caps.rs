//! Reading this CPU's VMX capability MSRs (SDM Vol. 3C, Appendix A "VMX
//! Capability Reporting Facility"). The decoding is plain Rust in
//! [`hypervisor_core::caps`]; this file only executes the RDMSRs.

use core::fmt;

use hypervisor_core::caps::{RawVmxMsrs, VmxCapabilities};
use hypervisor_core::caps_explorer::write_explorer;

use crate::vmx::read_msr;

/// Reads and decodes every capability MSR. Call only when CPUID reports VMX
/// ([`crate::vmx::on::cpu_has_vmx`]): otherwise the MSRs do not exist and
/// RDMSR faults.
pub fn read() -> (RawVmxMsrs, VmxCapabilities) {
    // SAFETY: CPUID.1:ECX.VMX is set (the caller's duty), so IA32_FEATURE_CONTROL
    // and IA32_VMX_BASIC exist; `read_with` reads the optional MSRs only when
    // the ones before them say they exist (SDM Vol. 3C, A.1).
    let raw = RawVmxMsrs::read_with(|msr| unsafe { read_msr(msr) });
    (raw, VmxCapabilities::decode(&raw))
}

/// The capability explorer (`cargo run -- --caps`): every IA32_VMX_* MSR,
/// raw and decoded bit by bit. The report itself is written by
/// [`hypervisor_core::caps_explorer::write_explorer`] (host-tested); this
/// function only sends it to the console, one `[hv INFO ]` line per report
/// line. `_caps` is the decoded summary the caller already printed.
pub fn print_explorer(raw: &RawVmxMsrs, _caps: &VmxCapabilities) {
    let mut lines = LineLogger::new();
    if write_explorer(raw, &mut lines).is_err() {
        crate::error!("capability explorer: the report could not be formatted");
    }
    lines.flush();
}

/// A [`fmt::Write`] that collects text until a `'\n'` and then logs the line
/// through [`crate::info!`]. It needs no heap: a line lives in a fixed
/// buffer, and a line longer than the buffer is logged in pieces (the
/// explorer's lines are all shorter than 100 characters).
struct LineLogger {
    buffer: [u8; Self::CAPACITY],
    len: usize,
}

impl LineLogger {
    /// Bytes per logged line.
    const CAPACITY: usize = 160;

    const fn new() -> Self {
        Self { buffer: [0; Self::CAPACITY], len: 0 }
    }

    /// Logs the collected text, if any, as one line.
    fn flush(&mut self) {
        if self.len > 0 {
            // Only whole `char`s are ever copied in, so this is valid UTF-8.
            let line = core::str::from_utf8(&self.buffer[..self.len]).unwrap_or("<invalid UTF-8>");
            crate::info!("{}", line);
            self.len = 0;
        }
    }
}

impl fmt::Write for LineLogger {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for c in text.chars() {
            if c == '\n' {
                self.flush();
                continue;
            }
            let mut utf8 = [0u8; 4];
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            if self.len + bytes.len() > Self::CAPACITY {
                self.flush();
            }
            self.buffer[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
        Ok(())
    }
}
