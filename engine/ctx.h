/* The context switch: one assembly file per architecture (ctx_x86_64.S, ctx_aarch64.S).
 *
 * A context is the stack pointer of a suspended flow. Switching pushes the callee-saved registers
 * of the ABI and the floating-point control state (x86-64: MXCSR and the x87 control word;
 * aarch64: FPCR) on the current stack, stores the stack pointer in @from, loads @to's and pops the
 * same set. Caller-saved registers need no saving: the switch is an ordinary call to the compiler.
 * No system call and no signal mask: that is what makes it ~30x cheaper than swapcontext(3). */
#ifndef CORIO_CTX_H
#define CORIO_CTX_H

#include <stddef.h>
#include <stdint.h>

struct corio__ctx {
    void *sp; /* the saved stack pointer; its frame holds the registers */
};

/* Saves the current flow in @from and resumes @to. Returns when something switches back to @from. */
void corio__ctx_switch(struct corio__ctx *from, struct corio__ctx *to);

/* The first code a new context runs (assembly): calls entry(arg) from the registers the initial
 * frame set. If entry returns, ctx_start resumes the context saved in *exit_to without saving its
 * own and without touching the stack below entry's frame (the caller's ended flow is never
 * resumed, and its dead frames are left intact for the scheduler to inspect). */
void corio__ctx_start(void);

typedef void corio__ctx_entry(void *arg);

#if defined(__x86_64__)
/* The scheduler's side of a switch, inlined into its loop: saves the scheduler in @from with a
 * local label as its resume address, and enters @to with a ret. That ret pops the address the
 * coroutine's own call to corio__ctx_switch pushed, which is what the return-stack predictor
 * holds, since corio__ctx_switch leaves by an indirect jump: both directions are then predicted.
 * The frame pushed is the same as corio__ctx_switch's, so either side can resume the other.
 * The red zone is stepped over; every register the ABI lets a call clobber is declared
 * clobbered (vector registers beyond xmm15 and mask registers do not exist without AVX-512,
 * which this code is not built for). */
static inline __attribute__((always_inline)) void corio__ctx_resume(struct corio__ctx *from,
                                                                   struct corio__ctx *to)
{
    __asm__ volatile("subq $128, %%rsp\n\t"
                     "leaq 1f(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "pushq %%rbp\n\tpushq %%rbx\n\tpushq %%r12\n\t"
                     "pushq %%r13\n\tpushq %%r14\n\tpushq %%r15\n\t"
                     "subq $8, %%rsp\n\tstmxcsr (%%rsp)\n\tfnstcw 4(%%rsp)\n\t"
                     "movq %%rsp, (%0)\n\t"
                     "movq (%1), %%rsp\n\t"
                     "ldmxcsr (%%rsp)\n\tfldcw 4(%%rsp)\n\taddq $8, %%rsp\n\t"
                     "popq %%r15\n\tpopq %%r14\n\tpopq %%r13\n\t"
                     "popq %%r12\n\tpopq %%rbx\n\tpopq %%rbp\n\t"
                     "ret\n"
                     "1:\n\t"
                     "addq $128, %%rsp\n\t"
                     :
                     : "r"(from), "r"(to)
                     : "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "memory", "cc",
                       "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                       "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "st",
                       "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
}
#else
static inline void corio__ctx_resume(struct corio__ctx *from, struct corio__ctx *to)
{
    corio__ctx_switch(from, to);
}
#endif

/* Prepares @ctx so that the first switch to it calls entry(arg) on the stack [lo, hi), with the ABI's
 * stack alignment at entry, and switches to *exit_to when entry returns. The floating-point control
 * state is copied from the caller. */
static inline void corio__ctx_make(struct corio__ctx *ctx, void *lo, void *hi,
                                   corio__ctx_entry *entry, void *arg,
                                   struct corio__ctx *exit_to)
{
    uintptr_t top = (uintptr_t)hi & ~(uintptr_t)15;
    (void)lo;
#if defined(__x86_64__)
    /* Frame popped by corio__ctx_switch, from low to high: [mxcsr:4 fpcw:2 pad:2] r15 r14 r13 r12
     * rbx rbp ret. After the pops and ret, rsp == top (16-aligned), so the call in ctx_start
     * enters @entry with rsp == 8 mod 16, as the System V ABI requires. */
    uint64_t *sp = (uint64_t *)(top - 64);
    uint32_t mxcsr;
    uint16_t fpcw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpcw));
    sp[0] = (uint64_t)mxcsr | ((uint64_t)fpcw << 32);
    sp[1] = 0;                                 /* r15 */
    sp[2] = (uint64_t)(uintptr_t)exit_to;      /* r14: where to go when entry returns */
    sp[3] = (uint64_t)(uintptr_t)arg; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    sp[5] = 0;                       /* rbx */
    sp[6] = 0;                       /* rbp: ends the frame-pointer chain for debuggers */
    sp[7] = (uint64_t)(uintptr_t)corio__ctx_start;
    ctx->sp = sp;
#elif defined(__aarch64__)
    /* Frame popped by corio__ctx_switch (176 bytes): x19..x30 at [0, 96), d8..d15 at [96, 160),
     * fpcr at 160. x19 = entry, x20 = arg, x21 = exit_to, x29 = 0 (end of the frame chain),
     * x30 = ctx_start. */
    uint64_t *sp = (uint64_t *)(top - 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    for (int i = 0; i < 22; i++)
        sp[i] = 0;
    sp[0] = (uint64_t)(uintptr_t)entry;
    sp[1] = (uint64_t)(uintptr_t)arg;
    sp[2] = (uint64_t)(uintptr_t)exit_to;
    sp[11] = (uint64_t)(uintptr_t)corio__ctx_start;
    sp[20] = fpcr;
    ctx->sp = sp;
#else
#error "corio: no context switch for this architecture"
#endif
}

#endif
