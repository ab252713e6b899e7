/* Context switch for aarch64, AAPCS64. See ctx.h for the frame layout.
 * Callee-saved: x19-x28, x29 (fp), x30 (lr), sp, and the low 64 bits of v8-v15 (d8-d15); FPCR
 * travels with the context too, as MXCSR does on x86-64. */
#if defined(__aarch64__)
    .text
    .globl corio__ctx_switch
    .hidden corio__ctx_switch
    .type corio__ctx_switch, %function
    .p2align 4
/* void corio__ctx_switch(struct corio__ctx *from (x0), struct corio__ctx *to (x1)) */
corio__ctx_switch:
    .cfi_startproc
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
/* Pops the frame at sp: the second half of every switch, and of corio__ctx_start. */
.Lrestore:
    ldr x9, [sp, #160]
    msr fpcr, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .cfi_endproc
    .size corio__ctx_switch, .-corio__ctx_switch

    .globl corio__ctx_start
    .hidden corio__ctx_start
    .type corio__ctx_start, %function
    .p2align 4
/* Entered by the ret of the first switch into a new context: x19 = entry, x20 = arg,
 * x21 = the context to resume when entry returns (callee-saved). Then the second half of
 * corio__ctx_switch: nothing below entry's frame is written after it returns. */
corio__ctx_start:
    .cfi_startproc
    .cfi_undefined x30
    mov x0, x20
    blr x19
    ldr x9, [x21]
    mov sp, x9
    b .Lrestore
    .cfi_endproc
    .size corio__ctx_start, .-corio__ctx_start
#endif
    .section .note.GNU-stack,"",%progbits
