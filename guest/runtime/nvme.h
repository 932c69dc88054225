/* A small NVMe driver for guest programs (NVM Express Base Specification 1.4): finds the first
 * controller on bus 0, resets and enables it with an admin queue pair, creates I/O queue pairs
 * whose completions raise MSI-X vectors, and submits one command at a time, waiting for its
 * completion with sti; hlt (a 1 ms APIC tick bounds every wait, so a lost completion fails the
 * command instead of hanging the guest). Works under hvaccel (--disk) and QEMU (-device nvme).
 * Memory: queues and buffers are guest-physical = virtual (the runtime's identity map). */
#ifndef HVACCEL_GUEST_NVME_H
#define HVACCEL_GUEST_NVME_H

#include "pci.h"

#define NVME_PAGE 4096u
#define NVME_MAX_IO_QUEUES 4
#define NVME_QUEUE_ENTRIES 16
#define NVME_VECTOR_BASE 0x70 /* MSI-X entry n raises vector NVME_VECTOR_BASE + n */
#define NVME_TICK_VECTOR 0xfd

/* Admin and I/O command opcodes (1.4 figures 139 and 346). */
enum {
    NVME_ADMIN_DELETE_SQ = 0x00,
    NVME_ADMIN_CREATE_SQ = 0x01,
    NVME_ADMIN_GET_LOG_PAGE = 0x02,
    NVME_ADMIN_DELETE_CQ = 0x04,
    NVME_ADMIN_CREATE_CQ = 0x05,
    NVME_ADMIN_IDENTIFY = 0x06,
    NVME_ADMIN_SET_FEATURES = 0x09,
    NVME_ADMIN_GET_FEATURES = 0x0a,
    NVME_IO_FLUSH = 0x00,
    NVME_IO_WRITE = 0x01,
    NVME_IO_READ = 0x02,
    NVME_IO_WRITE_ZEROES = 0x08,
    NVME_IO_DSM = 0x09,
};

/* Status: (SCT << 8) | SC (1.4 figure 124); NVME_TIMEOUT when no completion came. */
#define NVME_SC(sct, sc) (((sct) << 8) | (sc))
#define NVME_TIMEOUT 0x10000

struct nvme_cmd {
    uint32_t dw[16];
};

struct nvme_queue {
    volatile uint32_t* sq; /* 64-byte entries */
    volatile uint32_t* cq; /* 16-byte entries */
    uint16_t qid, sq_tail, cq_head;
    uint8_t phase;
    bool live;
};

struct nvme {
    struct pci_dev dev;
    uint64_t regs;
    uint64_t cap;
    unsigned dstrd; /* doorbell stride: 4 << CAP.DSTRD bytes */
    struct msix mx;
    struct nvme_queue admin, io[NVME_MAX_IO_QUEUES + 1];
    uint16_t next_cid;
    uint32_t last_dw0; /* DW0 of the last completion (Set/Get Features results) */
    volatile unsigned irqs[NVME_MAX_IO_QUEUES + 1]; /* interrupts taken per vector */
};

/* Finds the controller (class 01:08:02), places its BARs at `bar_fallback` if firmware did
 * not, sets up MSI-X and the admin queue, and enables it. False (with a message) on failure. */
bool nvme_init(struct nvme* n, uint64_t bar_fallback);
/* Submits `c` on queue `qid` (0: admin), waits for its completion; returns the status. */
unsigned nvme_submit(struct nvme* n, unsigned qid, struct nvme_cmd* c);
/* Creates I/O queue pair `qid` (1..NVME_MAX_IO_QUEUES) on MSI-X entry `qid`; returns the status. */
unsigned nvme_create_io_queues(struct nvme* n, unsigned qid);
unsigned nvme_delete_io_queues(struct nvme* n, unsigned qid);
/* Read/Write of `blocks` 512-byte blocks at `lba` with the given PRP entries. */
unsigned nvme_rw(struct nvme* n, unsigned qid, uint8_t opcode, uint64_t lba, unsigned blocks,
                 uint64_t prp1, uint64_t prp2);
/* Normal shutdown (CC.SHN = 01b): true once CSTS.SHST reports it complete. */
bool nvme_shutdown(struct nvme* n);

static inline uint32_t nvme_reg32(const struct nvme* n, uint32_t off)
{
    return mmio_read32(n->regs + off);
}
static inline uint64_t nvme_reg64(const struct nvme* n, uint32_t off)
{
    return mmio_read32(n->regs + off) | ((uint64_t)mmio_read32(n->regs + off + 4) << 32);
}

#endif
