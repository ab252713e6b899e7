/* Context switch for x86-64, System V ABI. See ctx.h for the frame layout.
 * Callee-saved: rbx, rbp, r12-r15, rsp, and the control bits of MXCSR and the x87 control word
 * (the ABI makes both callee-saved), which is why they travel with each context. */
#if defined(__x86_64__)
    .text
    .globl corio__ctx_switch
    .hidden corio__ctx_switch
    .type corio__ctx_switch, @function
    .p2align 4
/* void corio__ctx_switch(struct corio__ctx *from (rdi), struct corio__ctx *to (rsi)) */
corio__ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size corio__ctx_switch, .-corio__ctx_switch

    .globl corio__ctx_start
    .hidden corio__ctx_start
    .type corio__ctx_start, @function
    .p2align 4
/* Entered by the ret of the first switch into a new context: r12 = entry, r13 = arg. */
corio__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size corio__ctx_start, .-corio__ctx_start
#endif
    .section .note.GNU-stack,"",@progbits
