/**
 * NVMe data structures by field name (NVM Express Base Specification 1.4: 4.2 submission queue entry, 4.6 completion
 * queue entry, 5.15 Identify data structures; NVM Command Set: read, write, flush), as `lib/abi/struct.ts` views.
 * Every command is a 64-byte submission queue entry: the common dwords 0-9, then command-specific dwords 10-15, so
 * each command kind gets its own struct sharing {@linkcode COMMAND_HEADER}.
 *
 * ```ts
 * import { AdminOpcode, Cns, IdentifyCommand } from "./structs.ts";
 * const cmd = IdentifyCommand.alloc();
 * cmd.opc = AdminOpcode.IDENTIFY;
 * cmd.cns = Cns.CONTROLLER;
 * cmd.bytes.length; // 64
 * ```
 * @module
 */
import { bytes, defineStruct, u16, u32, u64, u8 } from "../../abi.ts";

/** Bytes in a submission queue entry. */
export const SQE_SIZE = 64;
/** Bytes in a completion queue entry. */
export const CQE_SIZE = 16;
/** Bytes in an Identify data structure. */
export const IDENTIFY_SIZE = 4096;

/** Dwords 0-9 of every submission queue entry. */
export const COMMAND_HEADER = {
  /** Opcode. */
  opc: u8(0),
  /** FUSE 1:0 (fused operation), PSDT 7:6 (0: PRPs). */
  flags: u8(1),
  /** Command identifier: the completion entry carries it back. */
  cid: u16(2),
  /** Namespace identifier. */
  nsid: u32(4),
  cdw2: u32(8),
  cdw3: u32(12),
  /** Metadata pointer. */
  mptr: u64(16),
  /** PRP entry 1: the first data page (may start inside it). */
  prp1: u64(24),
  /** PRP entry 2: the second page, or the bus address of a PRP list. */
  prp2: u64(32),
} as const;

/** A submission queue entry with dwords 10-15 as plain numbers (any command). */
export const SubmissionEntry = defineStruct("nvme_command", SQE_SIZE, {
  ...COMMAND_HEADER,
  cdw10: u32(40),
  cdw11: u32(44),
  cdw12: u32(48),
  cdw13: u32(52),
  cdw14: u32(56),
  cdw15: u32(60),
});

/** Identify (admin 06h). */
export const IdentifyCommand = defineStruct("nvme_identify", SQE_SIZE, {
  ...COMMAND_HEADER,
  /** Controller or Namespace Structure ({@linkcode Cns}). */
  cns: u8(40),
  /** Controller identifier (for the controller lists). */
  cntid: u16(42),
});

/** Create I/O Completion Queue (admin 05h). */
export const CreateCqCommand = defineStruct("nvme_create_cq", SQE_SIZE, {
  ...COMMAND_HEADER,
  /** Queue identifier. */
  cqid: u16(40),
  /** Queue size, 0-based. */
  qsize: u16(42),
  /** {@linkcode QueueFlags}: PC, IEN. */
  cq_flags: u16(44),
  /** MSI-X vector (when IEN). */
  irq_vector: u16(46),
});

/** Create I/O Submission Queue (admin 01h). */
export const CreateSqCommand = defineStruct("nvme_create_sq", SQE_SIZE, {
  ...COMMAND_HEADER,
  /** Queue identifier. */
  sqid: u16(40),
  /** Queue size, 0-based. */
  qsize: u16(42),
  /** {@linkcode QueueFlags}: PC; QPRIO 2:1. */
  sq_flags: u16(44),
  /** The completion queue its completions go to. */
  cqid: u16(46),
});

/** Delete I/O Submission Queue (admin 00h) and Delete I/O Completion Queue (admin 04h). */
export const DeleteQueueCommand = defineStruct("nvme_delete_queue", SQE_SIZE, {
  ...COMMAND_HEADER,
  /** Queue identifier. */
  qid: u16(40),
});

/** Set Features (admin 09h), Number of Queues (feature 07h): both counts 0-based. */
export const SetNumberOfQueuesCommand = defineStruct("nvme_features_num_queues", SQE_SIZE, {
  ...COMMAND_HEADER,
  /** Feature identifier ({@linkcode Feature}). */
  fid: u8(40),
  /** Number of I/O Submission Queues Requested. */
  nsqr: u16(44),
  /** Number of I/O Completion Queues Requested. */
  ncqr: u16(46),
});

/** The result (dword 0) of Set Features, Number of Queues: the counts granted, 0-based. */
export const NumberOfQueuesResult = defineStruct("nvme_num_queues_result", 4, {
  /** Number of I/O Submission Queues Allocated. */
  nsqa: u16(0),
  /** Number of I/O Completion Queues Allocated. */
  ncqa: u16(2),
});

/** Read (02h) and Write (01h) of the NVM command set. */
export const ReadWriteCommand = defineStruct("nvme_rw_command", SQE_SIZE, {
  ...COMMAND_HEADER,
  /** Starting LBA. */
  slba: u64(40),
  /** Number of logical blocks, 0-based. */
  nlb: u16(48),
  /** LR 15 (limited retry), FUA 14, PRINFO 13:10. */
  control: u16(50),
  /** Dataset management hints. */
  dsmgmt: u32(52),
  /** Expected initial logical block reference tag. */
  reftag: u32(56),
  apptag: u16(60),
  appmask: u16(62),
});

/** A completion queue entry. */
export const CompletionEntry = defineStruct("nvme_completion", CQE_SIZE, {
  /** Command specific result (dword 0). */
  result: u32(0),
  rsvd: u32(4),
  /** How far the controller has consumed the submission queue. */
  sq_head: u16(8),
  /** The submission queue the command came from. */
  sq_id: u16(10),
  /** The command identifier of the completed command. */
  cid: u16(12),
  /** Phase tag (bit 0, {@linkcode STATUS_PHASE}) and the status field (15:1, {@linkcode Status}). */
  status: u16(14),
});

/** The phase tag bit of {@linkcode CompletionEntry} `status`: it flips on every pass through the queue. */
export const STATUS_PHASE = 1;

/** The status field within {@linkcode CompletionEntry} `status` (bits 15:1). */
export const CQE_STATUS = { shift: 1, width: 15 } as const;

/** Fields of the status field ({@linkcode CQE_STATUS}): SC, SCT, DNR. */
export const Status = {
  /** Status Code. */
  SC: { shift: 0, width: 8 },
  /** Status Code Type (0 generic, 1 command specific, 2 media errors). */
  SCT: { shift: 8, width: 3 },
  /** Do Not Retry. */
  DNR: { shift: 14, width: 1 },
} as const;

/** Create queue flags. */
export const QueueFlags = {
  /** Physically Contiguous. */
  PC: 1 << 0,
  /** Interrupts Enabled (completion queues). */
  IEN: 1 << 1,
} as const;

/** Admin command opcodes. */
export const AdminOpcode = {
  DELETE_IO_SQ: 0x00,
  CREATE_IO_SQ: 0x01,
  DELETE_IO_CQ: 0x04,
  CREATE_IO_CQ: 0x05,
  IDENTIFY: 0x06,
  SET_FEATURES: 0x09,
} as const;

/** NVM command set opcodes. */
export const NvmOpcode = { FLUSH: 0x00, WRITE: 0x01, READ: 0x02 } as const;

/** Identify CNS values. */
export const Cns = { NAMESPACE: 0x00, CONTROLLER: 0x01, ACTIVE_NAMESPACES: 0x02 } as const;

/** Feature identifiers. */
export const Feature = { NUMBER_OF_QUEUES: 0x07 } as const;

/** Identify Controller data (CNS 01h). */
export const IdentifyController = defineStruct("nvme_id_ctrl", IDENTIFY_SIZE, {
  /** PCI Vendor ID. */
  vid: u16(0),
  /** PCI Subsystem Vendor ID. */
  ssvid: u16(2),
  /** Serial Number (ASCII, space padded). */
  sn: bytes(4, 20),
  /** Model Number (ASCII). */
  mn: bytes(24, 40),
  /** Firmware Revision (ASCII). */
  fr: bytes(64, 8),
  /** Recommended Arbitration Burst. */
  rab: u8(72),
  /** IEEE OUI identifier. */
  ieee: bytes(73, 3),
  /** Controller Multi-Path I/O and Namespace Sharing Capabilities. */
  cmic: u8(76),
  /** Maximum Data Transfer Size: 2^MDTS minimum-size pages (0: no limit). */
  mdts: u8(77),
  /** Controller ID. */
  cntlid: u16(78),
  /** Version (as the VS register). */
  ver: u32(80),
  /** Optional Admin Command Support. */
  oacs: u16(256),
  /** Abort Command Limit, 0-based. */
  acl: u8(258),
  /** Asynchronous Event Request Limit, 0-based. */
  aerl: u8(259),
  /** Submission Queue Entry Size: required 3:0, maximum 7:4 (powers of two). */
  sqes: u8(512),
  /** Completion Queue Entry Size: required 3:0, maximum 7:4. */
  cqes: u8(513),
  /** Maximum Outstanding Commands. */
  maxcmd: u16(514),
  /** Number of Namespaces. */
  nn: u32(516),
  /** Optional NVM Command Support. */
  oncs: u16(520),
  /** Volatile Write Cache. */
  vwc: u8(525),
  /** NVM Subsystem NVMe Qualified Name (UTF-8, NUL padded). */
  subnqn: bytes(768, 256),
});

/** One LBA Format entry of Identify Namespace. */
export const LbaFormat = defineStruct("nvme_lbaf", 4, {
  /** Metadata Size in bytes per block. */
  ms: u16(0),
  /** LBA Data Size: a block is 2^LBADS bytes. */
  lbads: u8(2),
  /** Relative Performance (bits 1:0). */
  rp: u8(3),
});

/** Identify Namespace data (CNS 00h). */
export const IdentifyNamespace = defineStruct("nvme_id_ns", IDENTIFY_SIZE, {
  /** Namespace Size in blocks. */
  nsze: u64(0),
  /** Namespace Capacity in blocks. */
  ncap: u64(8),
  /** Namespace Utilization in blocks. */
  nuse: u64(16),
  /** Namespace Features. */
  nsfeat: u8(24),
  /** Number of LBA Formats, 0-based. */
  nlbaf: u8(25),
  /** Formatted LBA Size: the LBA format in use is bits 3:0. */
  flbas: u8(26),
  /** Metadata Capabilities. */
  mc: u8(27),
  /** End-to-end Data Protection Capabilities. */
  dpc: u8(28),
  /** End-to-end Data Protection Type Settings. */
  dps: u8(29),
  /** Namespace Globally Unique Identifier. */
  nguid: bytes(104, 16),
  /** IEEE Extended Unique Identifier. */
  eui64: bytes(120, 8),
  /** LBA Format 0..15, {@linkcode LbaFormat} each. */
  lbaf: bytes(128, 16 * LbaFormat.size),
});

/** Mask of the LBA format index in Identify Namespace `flbas`. */
export const FLBAS_FORMAT = 0xf;
