// The TCP translator's counters (ctx.counters keys), one line of meaning each: what --stats and the
// API report. Names are stable: scripts and dashboards key on them.
export const TcpCounters = {
  /** flows created (guest SYN or port forward) */
  FLOWS_OPENED: 'tcp_flows_opened',
  /** flows forgotten, for any reason */
  FLOWS_CLOSED: 'tcp_flows_closed',
  /** flows that ended with FINs both ways */
  FLOWS_FINISHED: 'tcp_flows_finished',
  /** host connects (or guest SYN-ACKs for port forwards) that succeeded */
  CONNECTED: 'tcp_connected',
  /** host connect refused: RST,ACK to the guest */
  CONNECT_REFUSED: 'tcp_connect_refused',
  /** host connect: no route / host down: ICMP unreachable to the guest */
  CONNECT_UNREACHABLE: 'tcp_connect_unreachable',
  /** host connect: EACCES/EPERM: ICMP admin prohibited */
  CONNECT_PROHIBITED: 'tcp_connect_prohibited',
  /** host connect took longer than connectTimeoutMs: ICMP host unreachable */
  CONNECT_TIMEOUT: 'tcp_connect_timeout',
  /** host connect failed otherwise: RST,ACK */
  CONNECT_ERROR: 'tcp_connect_error',
  /** SYN to an unmapped destination: ICMP net unreachable */
  UNREACHABLE_ICMP: 'tcp_unreachable_icmp',
  /** port-forward flows opened toward the guest */
  INBOUND_OPENED: 'tcp_inbound_opened',
  /** Multi-queue: a bare RST written ahead of an inbound SYN so the kernel steers the SYN-ACK to us. */
  INBOUND_STEER_PRIMED: 'tcp_inbound_steer_primed',
  /** the guest answered a port-forward SYN with RST */
  INBOUND_REFUSED: 'tcp_inbound_refused',
  /** openInbound() refused: the tuple is in use */
  INBOUND_TUPLE_BUSY: 'tcp_inbound_tuple_busy',
  /** openInbound() gave up: the guest MAC never resolved */
  INBOUND_NO_MAC: 'tcp_inbound_no_mac',
  /** connecting flows evicted by newer SYNs (maxConnecting, or table full) */
  SYN_EVICTED: 'tcp_syn_evicted',
  /** finished (lingering) flows evicted because the table was full */
  LINGER_EVICTED: 'tcp_linger_evicted',
  /** SYNs dropped: table full of established flows */
  SYN_FLOOD_DROPPED: 'tcp_syn_flood_dropped',
  /** guest SYN retransmissions while the host connect is in flight */
  SYN_RETRANSMIT_IGNORED: 'tcp_syn_retransmit_ignored',
  /** guest SYN retransmissions answered with our SYN-ACK again */
  SYN_RETRANSMIT: 'tcp_syn_retransmit',
  /** a new SYN replaced a finished/half-closed flow on the same tuple */
  FLOW_REPLACED: 'tcp_flow_replaced',
  /** malformed TCP header */
  BAD_HEADER: 'tcp_bad_header',
  /** impossible flag combinations (SYN+FIN, SYN+RST, SYN+ACK from the guest) */
  BAD_FLAGS: 'tcp_bad_flags',
  /** port 0, or a source/destination that is never translated */
  BAD_ADDRESS: 'tcp_bad_address',
  /** IP fragments carrying TCP (never produced by a sane guest) */
  FRAGMENT_DROPPED: 'tcp_fragment_dropped',
  /** IPv6 segment while IPv6 is off (no config.ipv6) */
  IPV6_OFF_DROPPED: 'tcp_ipv6_off_dropped',
  /** IPv6 flows created (also counted in tcp_flows_opened) */
  FLOWS6_OPENED: 'tcp_flows6_opened',
  /** handshake ACK acknowledging the wrong ISN: answered with RST */
  BAD_HANDSHAKE_ACK: 'tcp_bad_handshake_ack',
  /** segment that makes no sense in the flow state */
  UNEXPECTED_SEGMENT: 'tcp_unexpected_segment',
  /** segment without ACK on a synchronized flow */
  NO_ACK: 'tcp_no_ack',
  /** segment for an unknown flow: answered with RST */
  NO_FLOW_RST: 'tcp_no_flow_rst',
  /** RST for an unknown flow: ignored */
  NO_FLOW_RST_IGNORED: 'tcp_no_flow_rst_ignored',
  /** ACK for bytes never sent: answered with ACK, dropped */
  ACK_UNSENT: 'tcp_ack_unsent',
  /** duplicate ACKs from the guest */
  DUP_ACK: 'tcp_dup_ack',
  /** guest data already received (retransmission): re-ACKed */
  DUP_DATA: 'tcp_dup_data',
  /** out-of-order guest data: dropped, duplicate ACK sent */
  OOO_DROPPED: 'tcp_ooo_dropped',
  /** guest data beyond our advertised window: trimmed/dropped */
  OUT_OF_WINDOW: 'tcp_out_of_window',
  /** RFC 5961 challenge ACKs (inexact RST, SYN on a live flow) */
  CHALLENGE_ACK: 'tcp_challenge_ack',
  /** guest RST outside the window: ignored */
  RST_OUT_OF_WINDOW: 'tcp_rst_out_of_window',
  /** guest RSTs accepted: host socket reset */
  RST_FROM_GUEST: 'tcp_rst_from_guest',
  /** RSTs sent to the guest for a flow */
  RST_TO_GUEST: 'tcp_rst_to_guest',
  /** host socket failed or reset: RST to the guest after queued data */
  HOST_RESET: 'tcp_host_reset',
  /** guest data for a host socket no longer writable */
  WRITE_CLOSED: 'tcp_write_closed',
  /** guest payload bytes accepted (written to host sockets) */
  RX_BYTES: 'tcp_rx_bytes',
  /** guest payloads copied instead of written zero-copy */
  RX_COPIED: 'tcp_rx_copied',
  /** bytes read from host sockets */
  HOST_RX_BYTES: 'tcp_host_rx_bytes',
  /** payload bytes sent to the guest (retransmissions included) */
  TX_BYTES: 'tcp_tx_bytes',
  /** frames the sink refused (the TAP queue was full) */
  TX_DROPPED: 'tcp_tx_dropped',
  /** host sockets paused for backpressure (guest window or budgets) */
  HOST_PAUSED: 'tcp_host_paused',
  /** window updates sent after the host socket drained */
  WINDOW_UPDATE: 'tcp_window_update',
  /** retransmissions (RTO, SYN, SYN-ACK) */
  RETRANSMITS: 'tcp_retransmits',
  /** retransmission timeouts */
  RTO_TIMEOUTS: 'tcp_rto_timeouts',
  /** fast retransmissions (third duplicate ACK) */
  FAST_RETRANSMITS: 'tcp_fast_retransmits',
  /** zero-window probes sent */
  ZERO_WINDOW_PROBE: 'tcp_zero_window_probe',
  /** flows reset after too many retransmissions */
  GIVE_UP: 'tcp_give_up',
  /** flows reset or forgotten after idling */
  IDLE_TIMEOUT: 'tcp_idle_timeout',
  /** bare ACKs that keep an idle inbound flow on its TAP queue (multiQueue) */
  QUEUE_PIN_ACK: 'tcp_queue_pin_ack',
  /** exceptions caught at the packet/timer boundary (should stay 0) */
  INTERNAL_ERROR: 'tcp_internal_error',
} as const;
export type TcpCounter = (typeof TcpCounters)[keyof typeof TcpCounters];
