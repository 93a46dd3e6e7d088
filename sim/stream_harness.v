// Stream harness: plays input words into a one-input, one-output stream design and records
// every output word, so that no Python runs per clock cycle (cocotb only resets the design,
// waits for `done` and reads the record). Written out by wrpn_rtl.sim.runner with the design's
// module name in place of ${dut}.
//
// Parameters (fixed at build time): IN_BITS and OUT_BITS, the input and output payload widths;
// IN_DEPTH, the number of input words the memory holds.
// Plusargs (read at time 0, relative to the simulator's working folder):
//   +harness_inputs=FILE    input words, one hex word per line ($readmemh)
//   +harness_record=FILE    written here: "i CYCLE" when an image's first word is taken,
//                           "o CYCLE HEX" for every output word, "end FIRST LAST TIMED_OUT"
//   +in_count=N +out_count=M +in_per_image=K +max_cycles=C
//   +stall_in=L +stall_out=L     stall level: a cycle stalls when 16 random bits < L (0..65536)
//   +stall_in_mode=D +stall_out_mode=D   0: random (the level), 1: every other cycle,
//                                        2: bursts (32 cycles of 48 run, 16 stall)
//   +harness_seed=S         seed of the two xorshift32 generators (one per stream)
//   +wave=FILE +wave_from=C +wave_to=C   dump the design's signals over cycles [C, C']
// Cycles count rising edges after reset; a transfer is recorded with the cycle it happens on.
module wrpn_stream_harness #(
    parameter integer IN_BITS = 8,
    parameter integer OUT_BITS = 8,
    parameter integer IN_DEPTH = 1
) (
    input wire clk /*verilator public_flat_rw*/,
    input wire rst /*verilator public_flat_rw*/,
    output reg done /*verilator public_flat_rw*/
);
    reg [IN_BITS-1:0] words [0:IN_DEPTH-1];
    reg [8*1024-1:0] inputs_file, record_file, wave_file;
    integer in_count, out_count, in_per_image, max_cycles;
    integer stall_in_level, stall_out_level, stall_in_mode, stall_out_mode, seed;
    integer wave_from, wave_to, waving;
    integer record;

    initial begin
        in_count = 0; out_count = 0; in_per_image = 1; max_cycles = 100000;
        stall_in_level = 0; stall_out_level = 0; stall_in_mode = 0; stall_out_mode = 0;
        seed = 1; wave_from = 0; wave_to = -1; waving = 0;
        if (!$value$plusargs("harness_inputs=%s", inputs_file)) inputs_file = "inputs.hex";
        if (!$value$plusargs("harness_record=%s", record_file)) record_file = "record.txt";
        if ($value$plusargs("in_count=%d", in_count)) begin end
        if ($value$plusargs("out_count=%d", out_count)) begin end
        if ($value$plusargs("in_per_image=%d", in_per_image)) begin end
        if ($value$plusargs("max_cycles=%d", max_cycles)) begin end
        if ($value$plusargs("stall_in=%d", stall_in_level)) begin end
        if ($value$plusargs("stall_out=%d", stall_out_level)) begin end
        if ($value$plusargs("stall_in_mode=%d", stall_in_mode)) begin end
        if ($value$plusargs("stall_out_mode=%d", stall_out_mode)) begin end
        if ($value$plusargs("harness_seed=%d", seed)) begin end
        if ($value$plusargs("wave=%s", wave_file)) begin
            if ($value$plusargs("wave_from=%d", wave_from)) begin end
            if ($value$plusargs("wave_to=%d", wave_to)) begin end
            $dumpfile(wave_file);
            $dumpvars(0, dut);
            $dumpoff;
            waving = 1;
        end
        if (in_count > 0) $readmemh(inputs_file, words, 0, in_count - 1);
        record = $fopen(record_file, "w");
    end

    // xorshift32, one step
    function [31:0] next_random(input [31:0] x);
        reg [31:0] y;
        begin
            y = x ^ (x << 13);
            y = y ^ (y >> 17);
            next_random = y ^ (y << 5);
        end
    endfunction

    function stalls(input integer mode, input integer level, input [31:0] random,
                    input [63:0] at);
        begin
            case (mode)
                1: stalls = at[0];
                2: stalls = (at % 48) >= 32;
                default: stalls = {16'd0, random[31:16]} < level;
            endcase
        end
    endfunction

    reg [63:0] cycle;
    reg [31:0] random_in, random_out;
    reg [31:0] in_index, out_received;
    reg in_valid, out_ready;
    reg [63:0] first_input_cycle;
    reg started;
    wire in_ready, out_valid;
    wire [OUT_BITS-1:0] out_payload;
    wire [31:0] next_index = in_index + (in_valid && in_ready);

    ${dut} dut (
        .clk(clk),
        .rst(rst),
        .input__payload(words[in_index < IN_DEPTH ? in_index : 0]),
        .input__valid(in_valid),
        .input__ready(in_ready),
        .output__payload(out_payload),
        .output__valid(out_valid),
        .output__ready(out_ready)
    );

    always @(posedge clk) begin
        if (rst) begin
            cycle <= 0;
            random_in <= seed ^ 32'h9e3779b9;
            random_out <= seed ^ 32'h7f4a7c15;
            in_index <= 0;
            in_valid <= 0;
            out_ready <= 0;
            out_received <= 0;
            started <= 0;
            first_input_cycle <= 0;
            done <= 0;
        end else if (!done) begin
            cycle <= cycle + 1;
            random_in <= next_random(random_in);
            random_out <= next_random(random_out);
            if (waving && cycle == wave_from) $dumpon;
            if (waving && cycle == wave_to + 1) $dumpoff;
            if (in_valid && in_ready) begin
                if (!started) first_input_cycle <= cycle;
                started <= 1;
                if (in_index % in_per_image == 0) begin
                    $fwrite(record, "i %0d\n", cycle);
                    $fflush(record);      // progress: the caller counts these lines
                end
            end
            // the source offers the next word on a cycle it does not stall, and keeps offering
            // it until it is taken
            if (!in_valid || in_ready)
                in_valid <= (next_index < in_count)
                            && !stalls(stall_in_mode, stall_in_level, random_in, cycle);
            in_index <= next_index;
            if (out_valid && out_ready) begin
                $fwrite(record, "o %0d %h\n", cycle, out_payload);
                out_received <= out_received + 1;
            end
            out_ready <= !stalls(stall_out_mode, stall_out_level, random_out, cycle)
                         && (out_received + (out_valid && out_ready) < out_count);
            if (out_received + (out_valid && out_ready) >= out_count
                    || cycle + 1 >= max_cycles) begin
                $fwrite(record, "end %0d %0d %0d\n", started ? first_input_cycle : cycle,
                        cycle, out_received + (out_valid && out_ready) < out_count);
                $fclose(record);
                if (waving) $dumpflush;
                done <= 1;
            end
        end
    end
endmodule
