/*
 * The virtual platform's fixed I/O ports: what a guest kernel pokes to power off or reset
 * "the machine", and the port ranges an emulated device may claim.
 *
 * Xen: none of this is Xen's ABI; it is the PC platform an HVM guest sees, as QEMU's
 * (hw/acpi: PM1a control block; hw/isa: reset control register 0xCF9; the i8042 keyboard
 * controller's pulse-reset command). A PV guest touching these ports traps to the hypervisor,
 * which is the lecture's Ring 0 point: the guest believes it powers off the machine, and only the
 * guest stops.
 */

/* ACPI PM1a control register (QEMU's ICH9/Q35 layout puts the PM block at 0x600). */
export const ACPI_PM1A_CNT = 0x604;
export const ACPI_SLP_EN = 1 << 13;   // write with SLP_TYP=S5 to enter soft-off
export const ACPI_SLP_TYP_S5 = 0 << 10;

/* Reset control register: bit 2 starts a reset, bit 1 asks for a hard one. */
export const RESET_CONTROL = 0xcf9;
export const RESET_CONTROL_RST_CPU = 1 << 2;

/* i8042 keyboard controller: command 0xFE on port 0x64 pulses the CPU reset line. */
export const I8042_COMMAND = 0x64;
export const I8042_PULSE_RESET = 0xfe;
