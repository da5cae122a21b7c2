//! Many guests at once: `--demo scale` starts 64 guests of 2 MiB in the
//! default Bochs machine (256 MiB), each a `neighbour` that fills its RAM with
//! a pattern of its own and checks it while the others run. All must finish
//! with their checksum intact, the summary table must list each, and the
//! hypervisor reports what it spent per guest.

mod common;

use boot::payloads::SCALE_DEMO_GUESTS;
use boot::RunOptions;

#[test]
fn sixty_four_guests_run_to_completion_in_one_boot() {
    let options =
        RunOptions { timeout: common::BOCHS_TIMEOUT * 2, ..common::bochs_options_from_args(&["--demo", "scale"]) };
    assert_eq!(options.guests.len(), SCALE_DEMO_GUESTS);
    let run = common::boot("Bochs boot of 64 guests", &options);
    for n in 1..=SCALE_DEMO_GUESTS {
        let guest = format!("scale-{n}");
        run.assert_line_starting_with(&format!("[{guest}] checksum "), "the guest's RAM checksum");
        run.assert_hv_line_containing(&format!("{guest}: ended exit:0: verdict PASS"), "each guest's verdict");
    }
    if run.lines().any(|line| line.contains("CORRUPTED")) {
        run.fail("a guest found its RAM changed");
    }
    run.assert_hv_line_containing(&format!("summary of {SCALE_DEMO_GUESTS} guests ("), "the summary table");
    run.assert_hv_line_containing("hypervisor memory for guests: ", "the memory spent per guest");
    run.assert_hv_line_containing(
        &format!("teardown: {SCALE_DEMO_GUESTS} blocks of 2 MiB of guest RAM zeroed and freed"),
        "the teardown report",
    );
    run.assert_passed();
}
