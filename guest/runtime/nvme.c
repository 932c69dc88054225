/* The guest NVMe driver (nvme.h). Register offsets and fields: NVMe 1.4 section 3.1. */
#include "nvme.h"

#include "apic.h"

#define REG_CAP 0x00
#define REG_CC 0x14
#define REG_CSTS 0x1c
#define REG_AQA 0x24
#define REG_ASQ 0x28
#define REG_ACQ 0x30
#define REG_DOORBELLS 0x1000
#define CC_EN 1u
#define CC_SHN_NORMAL (1u << 14)
#define CC_IOSQES (6u << 16) /* 64-byte submission entries */
#define CC_IOCQES (4u << 20) /* 16-byte completion entries */
#define CSTS_RDY 1u
#define CSTS_CFS 2u
#define CSTS_SHST_DONE (2u << 2)
#define WAIT_TICKS 5000 /* 5 s of 1 ms ticks: only a hang takes that long */

static uint8_t queue_pages[2 * (NVME_MAX_IO_QUEUES + 1)][NVME_PAGE]
    __attribute__((aligned(NVME_PAGE)));
static struct nvme* the_nvme;

static void on_vector(struct rt_frame* f)
{
    unsigned v = (unsigned)f->vector - NVME_VECTOR_BASE;
    if (the_nvme && v <= NVME_MAX_IO_QUEUES)
        ++the_nvme->irqs[v];
    apic_eoi();
}

static void on_tick(struct rt_frame* f)
{
    (void)f;
    apic_eoi();
}

/* Waits halted until cond(n) holds, at most WAIT_TICKS ticks. */
static bool wait_until(struct nvme* n, bool (*cond)(struct nvme*, unsigned), unsigned arg)
{
    if (cond(n, arg))
        return true;
    apic_tick_start(NVME_TICK_VECTOR);
    for (int i = 0; i < WAIT_TICKS && !cond(n, arg); ++i)
        rt_wait_irq();
    apic_tick_stop(NVME_TICK_VECTOR);
    return cond(n, arg);
}

static bool ready_is(struct nvme* n, unsigned want)
{
    uint32_t csts = nvme_reg32(n, REG_CSTS);
    return (csts & CSTS_CFS) || (csts & CSTS_RDY) == want;
}

static bool shutdown_done(struct nvme* n, unsigned unused)
{
    (void)unused;
    return (nvme_reg32(n, REG_CSTS) & (3u << 2)) == CSTS_SHST_DONE;
}

static struct nvme_queue* queue(struct nvme* n, unsigned qid)
{
    return qid ? &n->io[qid] : &n->admin;
}

static bool completion_ready(struct nvme* n, unsigned qid)
{
    struct nvme_queue* q = queue(n, qid);
    return ((q->cq[q->cq_head * 4 + 3] >> 16) & 1) == q->phase;
}

static void doorbell(struct nvme* n, unsigned index, uint32_t value)
{
    mmio_write32(n->regs + REG_DOORBELLS + index * (4u << n->dstrd), value);
}

static void queue_init(struct nvme_queue* q, unsigned qid)
{
    q->sq = (volatile uint32_t*)queue_pages[2 * qid];
    q->cq = (volatile uint32_t*)queue_pages[2 * qid + 1];
    memset(queue_pages[2 * qid], 0, 2 * NVME_PAGE);
    q->qid = (uint16_t)qid;
    q->sq_tail = q->cq_head = 0;
    q->phase = 1;
}

static bool find_controller(struct pci_dev* d)
{
    for (uint8_t slot = 0; slot < 32; ++slot) {
        struct pci_dev c = {slot, 0, 0};
        uint32_t id = pci_read32(&c, 0);
        if (id == 0xffffffffu || (pci_read32(&c, 0x08) >> 8) != 0x010802)
            continue;
        c.vendor = (uint16_t)id;
        c.device = (uint16_t)(id >> 16);
        *d = c;
        return true;
    }
    return false;
}

bool nvme_init(struct nvme* n, uint64_t bar_fallback)
{
    memset(n, 0, sizeof *n);
    the_nvme = n;
    if (!find_controller(&n->dev)) {
        rt_printf("nvme: no controller on bus 0\n");
        return false;
    }
    n->regs = pci_bar(&n->dev, 0, bar_fallback);
    if (!msix_init(&n->dev, &n->mx, bar_fallback + 0x8000)) {
        rt_printf("nvme: no MSI-X capability\n");
        return false;
    }
    for (unsigned v = 0; v <= NVME_MAX_IO_QUEUES; ++v) {
        rt_set_handler((uint8_t)(NVME_VECTOR_BASE + v), on_vector);
        msix_set(&n->mx, v, apic_id(), (uint8_t)(NVME_VECTOR_BASE + v), false);
    }
    rt_set_handler(NVME_TICK_VECTOR, on_tick);
    msix_control(&n->mx, true, false);

    n->cap = nvme_reg64(n, REG_CAP);
    n->dstrd = (unsigned)(n->cap >> 32) & 0xf;
    mmio_write32(n->regs + REG_CC, 0);
    if (!wait_until(n, ready_is, 0) || (nvme_reg32(n, REG_CSTS) & CSTS_CFS)) {
        rt_printf("nvme: the controller did not reset (CSTS %#x)\n", nvme_reg32(n, REG_CSTS));
        return false;
    }
    queue_init(&n->admin, 0);
    n->admin.live = true;
    mmio_write32(n->regs + REG_AQA, (NVME_QUEUE_ENTRIES - 1) | ((NVME_QUEUE_ENTRIES - 1) << 16));
    uint64_t asq = (uintptr_t)n->admin.sq, acq = (uintptr_t)n->admin.cq;
    mmio_write32(n->regs + REG_ASQ, (uint32_t)asq);
    mmio_write32(n->regs + REG_ASQ + 4, (uint32_t)(asq >> 32));
    mmio_write32(n->regs + REG_ACQ, (uint32_t)acq);
    mmio_write32(n->regs + REG_ACQ + 4, (uint32_t)(acq >> 32));
    mmio_write32(n->regs + REG_CC, CC_EN | CC_IOSQES | CC_IOCQES);
    if (!wait_until(n, ready_is, 1) || (nvme_reg32(n, REG_CSTS) & CSTS_CFS)) {
        rt_printf("nvme: the controller did not become ready (CSTS %#x)\n",
                  nvme_reg32(n, REG_CSTS));
        return false;
    }
    return true;
}

unsigned nvme_submit(struct nvme* n, unsigned qid, struct nvme_cmd* c)
{
    struct nvme_queue* q = queue(n, qid);
    if (qid > NVME_MAX_IO_QUEUES || !q->live)
        return NVME_TIMEOUT;
    uint16_t cid = ++n->next_cid;
    c->dw[0] = (c->dw[0] & 0xffffu) | ((uint32_t)cid << 16);
    for (unsigned i = 0; i < 16; ++i)
        q->sq[q->sq_tail * 16 + i] = c->dw[i];
    q->sq_tail = (uint16_t)((q->sq_tail + 1) % NVME_QUEUE_ENTRIES);
    doorbell(n, 2 * qid, q->sq_tail);
    if (!wait_until(n, completion_ready, qid))
        return NVME_TIMEOUT;
    volatile uint32_t* e = q->cq + q->cq_head * 4;
    uint32_t dw3 = e[3];
    n->last_dw0 = e[0];
    if (++q->cq_head == NVME_QUEUE_ENTRIES) {
        q->cq_head = 0;
        q->phase ^= 1;
    }
    doorbell(n, 2 * qid + 1, q->cq_head);
    if ((dw3 & 0xffff) != cid) {
        rt_printf("nvme: completion for command %u, expected %u\n", dw3 & 0xffff, cid);
        return NVME_TIMEOUT;
    }
    unsigned sf = dw3 >> 17; /* SC in bits 7:0, SCT in bits 10:8 */
    return NVME_SC((sf >> 8) & 7, sf & 0xff);
}

unsigned nvme_create_io_queues(struct nvme* n, unsigned qid)
{
    if (qid == 0 || qid > NVME_MAX_IO_QUEUES)
        return NVME_TIMEOUT;
    struct nvme_queue* q = &n->io[qid];
    queue_init(q, qid);
    struct nvme_cmd c = {{0}};
    c.dw[0] = NVME_ADMIN_CREATE_CQ;
    c.dw[6] = (uint32_t)(uintptr_t)q->cq;
    c.dw[10] = qid | ((NVME_QUEUE_ENTRIES - 1) << 16);
    c.dw[11] = 1u | 2u | (qid << 16); /* physically contiguous, interrupts on, vector qid */
    unsigned s = nvme_submit(n, 0, &c);
    if (s)
        return s;
    memset(&c, 0, sizeof c);
    c.dw[0] = NVME_ADMIN_CREATE_SQ;
    c.dw[6] = (uint32_t)(uintptr_t)q->sq;
    c.dw[10] = qid | ((NVME_QUEUE_ENTRIES - 1) << 16);
    c.dw[11] = 1u | (qid << 16); /* physically contiguous, completion queue qid */
    s = nvme_submit(n, 0, &c);
    q->live = s == 0;
    return s;
}

unsigned nvme_delete_io_queues(struct nvme* n, unsigned qid)
{
    struct nvme_cmd c = {{0}};
    c.dw[0] = NVME_ADMIN_DELETE_SQ;
    c.dw[10] = qid;
    unsigned s = nvme_submit(n, 0, &c);
    if (s)
        return s;
    n->io[qid].live = false;
    memset(&c, 0, sizeof c);
    c.dw[0] = NVME_ADMIN_DELETE_CQ;
    c.dw[10] = qid;
    return nvme_submit(n, 0, &c);
}

unsigned nvme_rw(struct nvme* n, unsigned qid, uint8_t opcode, uint64_t lba, unsigned blocks,
                 uint64_t prp1, uint64_t prp2)
{
    struct nvme_cmd c = {{0}};
    c.dw[0] = opcode;
    c.dw[1] = 1; /* namespace 1 */
    c.dw[6] = (uint32_t)prp1;
    c.dw[7] = (uint32_t)(prp1 >> 32);
    c.dw[8] = (uint32_t)prp2;
    c.dw[9] = (uint32_t)(prp2 >> 32);
    c.dw[10] = (uint32_t)lba;
    c.dw[11] = (uint32_t)(lba >> 32);
    c.dw[12] = (blocks - 1) & 0xffff;
    return nvme_submit(n, qid, &c);
}

bool nvme_shutdown(struct nvme* n)
{
    uint32_t cc = nvme_reg32(n, REG_CC);
    mmio_write32(n->regs + REG_CC, (cc & ~(3u << 14)) | CC_SHN_NORMAL);
    return wait_until(n, shutdown_done, 0);
}
