// Simulation stand-ins for the vendor primitives a board top instantiates (iCE40 SB_IO and
// SB_PLL40_PAD; ECP5 IB, OB, OBZ, BB and EHXPLLL), so the board design can be simulated with
// its pins (wrpn_rtl.board.simulated). They model what the board top relies on, no more:
//   * I/O buffers pass their pin through, unregistered (the PIN_TYPEs Amaranth uses for plain
//     pins); an output drives its pin whenever its PIN_TYPE has an output, enable or not.
//   * A PLL passes its reference clock through unchanged and reports lock at once (held off
//     by its reset input): the design runs at the oscillator's rate in simulation, and the
//     bench times the UART's bits from the design's own divisor, so nothing else changes.
// Parameters are accepted and ignored.

module SB_IO #(
    parameter [5:0] PIN_TYPE = 6'b000000,
    parameter PULLUP = 1'b0,
    parameter NEG_TRIGGER = 1'b0,
    parameter IO_STANDARD = "SB_LVCMOS"
) (
    inout  PACKAGE_PIN,
    input  LATCH_INPUT_VALUE,
    input  CLOCK_ENABLE,
    input  INPUT_CLK,
    input  OUTPUT_CLK,
    input  OUTPUT_ENABLE,
    input  D_OUT_0,
    input  D_OUT_1,
    output D_IN_0,
    output D_IN_1
);
    assign D_IN_0 = PACKAGE_PIN;
    assign D_IN_1 = PACKAGE_PIN;
    generate
        if (PIN_TYPE[5:2] != 4'b0000) begin : drives
            assign PACKAGE_PIN = D_OUT_0;
        end
    endgenerate
endmodule

module SB_PLL40_PAD #(
    parameter FEEDBACK_PATH = "SIMPLE",
    parameter DELAY_ADJUSTMENT_MODE_FEEDBACK = "FIXED",
    parameter DELAY_ADJUSTMENT_MODE_RELATIVE = "FIXED",
    parameter SHIFTREG_DIV_MODE = 0,
    parameter FDA_FEEDBACK = 0,
    parameter FDA_RELATIVE = 0,
    parameter PLLOUT_SELECT = "GENCLK",
    parameter DIVR = 0,
    parameter DIVF = 0,
    parameter DIVQ = 0,
    parameter FILTER_RANGE = 0,
    parameter ENABLE_ICEGATE = 0,
    parameter TEST_MODE = 0,
    parameter EXTERNAL_DIVIDE_FACTOR = 1
) (
    input  PACKAGEPIN,
    output PLLOUTCORE,
    output PLLOUTGLOBAL,
    input  EXTFEEDBACK,
    input  [7:0] DYNAMICDELAY,
    output LOCK,
    input  BYPASS,
    input  RESETB,
    input  LATCHINPUTVALUE,
    output SDO,
    input  SDI,
    input  SCLK
);
    assign PLLOUTCORE = PACKAGEPIN;
    assign PLLOUTGLOBAL = PACKAGEPIN;
    assign LOCK = RESETB;
    assign SDO = 1'b0;
endmodule

module IB (input I, output O);
    assign O = I;
endmodule

module OB (input I, output O);
    assign O = I;
endmodule

module OBZ (input I, input T, output O);
    assign O = I;
endmodule

module BB (input I, input T, output O, inout B);
    assign O = B;
endmodule

module EHXPLLL #(
    parameter CLKI_DIV = 1,
    parameter CLKFB_DIV = 1,
    parameter CLKOP_DIV = 8,
    parameter CLKOS_DIV = 8,
    parameter CLKOS2_DIV = 8,
    parameter CLKOS3_DIV = 8,
    parameter CLKOP_ENABLE = "ENABLED",
    parameter CLKOS_ENABLE = "DISABLED",
    parameter CLKOS2_ENABLE = "DISABLED",
    parameter CLKOS3_ENABLE = "DISABLED",
    parameter CLKOP_CPHASE = 0,
    parameter CLKOS_CPHASE = 0,
    parameter CLKOS2_CPHASE = 0,
    parameter CLKOS3_CPHASE = 0,
    parameter CLKOP_FPHASE = 0,
    parameter CLKOS_FPHASE = 0,
    parameter CLKOS2_FPHASE = 0,
    parameter CLKOS3_FPHASE = 0,
    parameter FEEDBK_PATH = "CLKOP",
    parameter CLKOP_TRIM_POL = "RISING",
    parameter CLKOP_TRIM_DELAY = 0,
    parameter CLKOS_TRIM_POL = "RISING",
    parameter CLKOS_TRIM_DELAY = 0,
    parameter OUTDIVIDER_MUXA = "DIVA",
    parameter OUTDIVIDER_MUXB = "DIVB",
    parameter OUTDIVIDER_MUXC = "DIVC",
    parameter OUTDIVIDER_MUXD = "DIVD",
    parameter PLL_LOCK_MODE = 0,
    parameter PLL_LOCK_DELAY = 200,
    parameter STDBY_ENABLE = "DISABLED",
    parameter REFIN_RESET = "DISABLED",
    parameter SYNC_ENABLE = "DISABLED",
    parameter INT_LOCK_STICKY = "ENABLED",
    parameter DPHASE_SOURCE = "DISABLED",
    parameter PLLRST_ENA = "DISABLED",
    parameter INTFB_WAKE = "DISABLED"
) (
    input  CLKI,
    input  CLKFB,
    input  PHASESEL1,
    input  PHASESEL0,
    input  PHASEDIR,
    input  PHASESTEP,
    input  PHASELOADREG,
    input  STDBY,
    input  PLLWAKESYNC,
    input  RST,
    input  ENCLKOP,
    input  ENCLKOS,
    input  ENCLKOS2,
    input  ENCLKOS3,
    output CLKOP,
    output CLKOS,
    output CLKOS2,
    output CLKOS3,
    output LOCK,
    output INTLOCK,
    output REFCLK,
    output CLKINTFB
);
    assign CLKOP = CLKI;
    assign CLKOS = CLKI;
    assign CLKOS2 = CLKI;
    assign CLKOS3 = CLKI;
    assign LOCK = ~RST;
    assign INTLOCK = ~RST;
    assign REFCLK = CLKI;
    assign CLKINTFB = CLKI;
endmodule
