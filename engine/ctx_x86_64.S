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
    /* Not ret: the return-stack predictor holds the address this call came from, not the one we
     * go to, and would mispredict every switch (~12 ns here). An indirect jump is predicted by
     * its target history instead, and leaves the predictor's entry for the coroutine's own return
     * path (see corio__ctx_resume in ctx.h). */
    popq %rcx
    jmp *%rcx
    .cfi_endproc
    .size corio__ctx_switch, .-corio__ctx_switch

    .globl corio__ctx_start
    .hidden corio__ctx_start
    .type corio__ctx_start, @function
    .p2align 4
/* Entered by the ret of the first switch into a new context: r12 = entry, r13 = arg,
 * r14 = the context to resume when entry returns (callee-saved, so it survives the call). The
 * second half of corio__ctx_switch follows: nothing is pushed, so no byte below entry's frame is
 * written after it returns. */
corio__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    movq (%r14), %rsp
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
    .size corio__ctx_start, .-corio__ctx_start
#endif
    .section .note.GNU-stack,"",@progbits
