//! Single-stepping (`--step GUEST`) in Bochs: realmode16, which climbs from
//! real mode to protected and long mode by itself, stepped one instruction at
//! a time (see docs/single-step.md).
//!
//! - `realmode16_stepped`: real step lines are required. Bochs 2.7 accepts
//!   the "monitor trap flag" control but makes no per-instruction MTF exits,
//!   so the kernel must notice that on the first instruction and step with
//!   RFLAGS.TF and #DB exits instead; on a CPU with working MTF the MTF lines
//!   are checked the same way. The lines must count from 1, show `RIP` and
//!   the bytes there, show the mode switches in order (CR0.PE 0 -> 1, CR4.PAE
//!   set, EFER.LME set, CR0.PG set, EFER.LMA appearing), show emulated
//!   instructions (the UART's OUTs, WRMSR) as steps, never show the
//!   hypervisor's TF in RFLAGS, fold the 3072 iterations of its `rep stosl`
//!   into one line and nothing else, and the guest must still end with its
//!   verdict PASS (exit:22).
//! - `step_checks_recognize_the_mode_switches`: the checks above, run on
//!   sample step lines, so they are known to fail when a switch is missing.

mod common;

use std::time::Duration;

use boot::RunOptions;
use hypervisor_core::blob::StepSelection;

/// Bochs charges time per console byte, and every instruction prints a line:
/// leave plenty of room.
const BOCHS_TIMEOUT: Duration = Duration::from_secs(900);

/// realmode16's step lines: `[hv STEP ] realmode16 #<n> RIP ...`.
const STEP_PREFIX: &str = "[hv STEP ] realmode16 #";
/// The kernel's warning when no step happened at all.
const NO_STEP_WARNING: &str = "--step: no monitor-trap-flag VM exit and no single-step #DB exit happened";
/// The kernel's notice when it falls back from MTF to RFLAGS.TF.
const TF_FALLBACK_NOTICE: &str = "does not deliver MTF exits, so single-stepping continues with RFLAGS.TF";

const CR0_PE: u64 = 1 << 0;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const RFLAGS_TF: u64 = 1 << 8;

/// One register change of a step line: `NAME 0xOLD->0xNEW`.
fn changes(line: &str) -> Vec<(&str, u64, u64)> {
    let words: Vec<&str> = line.split(' ').collect();
    words
        .windows(2)
        .filter_map(|pair| {
            let (old, new) = pair[1].split_once("->")?;
            let parse = |text: &str| u64::from_str_radix(text.strip_prefix("0x")?, 16).ok();
            Some((pair[0], parse(old)?, parse(new)?))
        })
        .collect()
}

/// Checks the step lines of realmode16; returns what is missing, if anything.
fn check_steps<'a>(lines: impl Iterator<Item = &'a str>) -> Result<usize, String> {
    let mut count = 0;
    // The step numbers of the first line showing each switch.
    let mut pe = None;
    let mut pae = None;
    let mut lme = None;
    let mut pg = None;
    let mut lma = None;
    let mut emulated = 0;
    for line in lines.filter(|line| line.starts_with(STEP_PREFIX)) {
        count += 1;
        let rest = &line[STEP_PREFIX.len()..];
        let (number, rest) = rest.split_once(' ').ok_or_else(|| format!("bad step line `{line}`"))?;
        let number: u64 = number.parse().map_err(|_| format!("bad step number in `{line}`"))?;
        if number != count as u64 {
            return Err(format!("step numbers should count from 1: expected #{count}, got `{line}`"));
        }
        if !rest.starts_with("RIP ") || !rest.contains(" [") {
            return Err(format!("a step line shows `RIP <address> [<bytes>]`: `{line}`"));
        }
        if rest.contains(" (emulated: ") {
            emulated += 1;
        }
        let set = |old: u64, new: u64, bit: u64| old & bit == 0 && new & bit != 0;
        for (name, old, new) in changes(rest) {
            if name == "RFLAGS" && (old | new) & RFLAGS_TF != 0 {
                return Err(format!("the guest never sets TF, yet a step line shows it: `{line}`"));
            }
            match name {
                "CR0" if set(old, new, CR0_PE) => pe = pe.or(Some(number)),
                "CR0" if set(old, new, CR0_PG) => pg = pg.or(Some(number)),
                "CR4" if set(old, new, CR4_PAE) => pae = pae.or(Some(number)),
                "EFER" if set(old, new, EFER_LME) => lme = lme.or(Some(number)),
                _ => {}
            }
            if name == "EFER" && set(old, new, EFER_LMA) {
                lma = lma.or(Some(number));
            }
        }
    }
    let found = |what: &str, step: Option<u64>| step.ok_or_else(|| format!("no step line shows {what}"));
    let pe = found("CR0.PE 0->1", pe)?;
    let pae = found("CR4.PAE set", pae)?;
    let lme = found("EFER.LME set", lme)?;
    let pg = found("CR0.PG set", pg)?;
    let lma = found("EFER.LMA appearing", lma)?;
    if emulated == 0 {
        return Err("no step line shows an emulated instruction `(emulated: ...)`".to_string());
    }
    if !(pe < pae && pae < pg && lme < pg && pg <= lma) {
        return Err(format!(
            "the switches should come in order PE (#{pe}) < PAE (#{pae}), LME (#{lme}) < PG (#{pg}) <= LMA (#{lma})"
        ));
    }
    Ok(count)
}

#[test]
fn realmode16_stepped() {
    let mut options = RunOptions { timeout: BOCHS_TIMEOUT, ..common::bochs_options(&["realmode16"]) };
    options.step = StepSelection::Guest(0);
    let started = std::time::Instant::now();
    let run = common::boot("Bochs boot of realmode16 with --step realmode16", &options);
    eprintln!("the stepped run took {:.1} s", started.elapsed().as_secs_f64());
    run.assert_hv_line_containing("single-stepping: probing the monitor trap flag", "the single-stepping notice");
    if let Some(line) = run.lines().find(|line| line.contains(NO_STEP_WARNING)) {
        run.fail(&format!("nothing was stepped: {line:?}"));
    }
    // Bochs 2.7 makes no MTF exits: the kernel must have said it falls back.
    if run.lines().any(|line| line.contains(TF_FALLBACK_NOTICE)) {
        eprintln!("this emulator makes no MTF exits: stepped with RFLAGS.TF");
    }
    match check_steps(run.lines()) {
        Ok(count) => eprintln!("{count} step lines, every mode switch seen"),
        Err(problem) => run.fail(&problem),
    }
    // realmode16 has one instruction that ends at its own RIP again and again:
    // the `rep stosl` clearing its page tables. Any other folded line would be
    // an instruction stepped twice (e.g. a #DB left pending by an emulated one).
    let folded: Vec<&str> =
        run.lines().filter(|line| line.starts_with(STEP_PREFIX) && line.contains(" repeats)")).collect();
    if folded.len() != 1 || !folded[0].contains("(+3071 repeats)") {
        run.fail(&format!("expected exactly one folded line, the 3072 dwords of `rep stosl`: {folded:?}"));
    }
    run.assert_hv_line_containing("realmode16: single-stepped ", "the step summary");
    run.assert_exact_line("[hv INFO ] realmode16: ended exit:22: verdict PASS (expected exit:22)");
    run.assert_passed();
}

#[test]
fn step_checks_recognize_the_mode_switches() {
    let sample = "\
[hv STEP ] realmode16 #1 RIP 0000:7c02 [31 c0 8e d8] RAX 0x80->0x0
[hv STEP ] realmode16 #2 RIP 0000:7c40 [0f 22 c0] CR0 0x30->0x31 RFLAGS 0x2->0x6
[hv STEP ] realmode16 #3 RIP 0008:7c48 [0f 22 e0 ...] (+3071 repeats) CR4 0x2000->0x2020
[hv STEP ] realmode16 #4 RIP 0008:7c50 [0f 20 c0] (emulated: WRMSR) EFER 0x0->0x100
[hv STEP ] realmode16 #5 RIP 0008:7c58 [ea] CR0 0x31->0x80000031 EFER 0x100->0x500
[hv STEP ] realmode16 #6 RIP 0x7c60 [48 31 c0]";
    assert_eq!(check_steps(sample.lines()), Ok(6));
    assert_eq!(changes("RIP 0x7c60 [0f] CR0 0x1->0x3 RAX 0x0->0x10"), [("CR0", 1, 3), ("RAX", 0, 0x10)]);
    // A missing switch or a gap in the numbers is reported.
    let without_lma = sample.replace("EFER 0x100->0x500", "");
    assert_eq!(check_steps(without_lma.lines()), Err("no step line shows EFER.LMA appearing".to_string()));
    let gap = sample.replace("#3 ", "#4 ");
    assert!(check_steps(gap.lines()).unwrap_err().contains("expected #3"));
    // The hypervisor's TF must never show, and emulated instructions must.
    let tf_shown = sample.replace("RFLAGS 0x2->0x6", "RFLAGS 0x2->0x106");
    assert!(check_steps(tf_shown.lines()).unwrap_err().contains("TF"));
    let nothing_emulated = sample.replace("(emulated: WRMSR) ", "");
    assert!(check_steps(nothing_emulated.lines()).unwrap_err().contains("emulated"));
    // PE before PAE is required.
    let out_of_order =
        sample.replace("CR0 0x30->0x31", "CR0 0x30->0x30").replace("EFER 0x0->0x100", "EFER 0x0->0x100 CR0 0x30->0x31");
    assert!(check_steps(out_of_order.lines()).unwrap_err().contains("in order"));
}
