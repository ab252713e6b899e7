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
 * frame set; entry must never return. */
void corio__ctx_start(void);

typedef void corio__ctx_entry(void *arg);

/* Prepares @ctx so that the first switch to it calls entry(arg) on the stack [lo, hi), with the ABI's
 * stack alignment at entry. The floating-point control state is copied from the caller. */
static inline void corio__ctx_make(struct corio__ctx *ctx, void *lo, void *hi,
                                   corio__ctx_entry *entry, void *arg)
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
    sp[1] = 0;                       /* r15 */
    sp[2] = 0;                       /* r14 */
    sp[3] = (uint64_t)(uintptr_t)arg; /* r13 */
    sp[4] = (uint64_t)(uintptr_t)entry; /* r12 */
    sp[5] = 0;                       /* rbx */
    sp[6] = 0;                       /* rbp: ends the frame-pointer chain for debuggers */
    sp[7] = (uint64_t)(uintptr_t)corio__ctx_start;
    ctx->sp = sp;
#elif defined(__aarch64__)
    /* Frame popped by corio__ctx_switch (176 bytes): x19..x30 at [0, 96), d8..d15 at [96, 160),
     * fpcr at 160. x19 = entry, x20 = arg, x29 = 0 (end of the frame chain), x30 = ctx_start. */
    uint64_t *sp = (uint64_t *)(top - 176);
    uint64_t fpcr;
    __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
    for (int i = 0; i < 22; i++)
        sp[i] = 0;
    sp[0] = (uint64_t)(uintptr_t)entry;
    sp[1] = (uint64_t)(uintptr_t)arg;
    sp[11] = (uint64_t)(uintptr_t)corio__ctx_start;
    sp[20] = fpcr;
    ctx->sp = sp;
#else
#error "corio: no context switch for this architecture"
#endif
}

#endif
