namespace Chainwalk.Wire;

/// <summary>
/// The link-layer header type of a capture (the tcpdump.org LINKTYPE_ numbers, as pcap and pcapng store them).
/// Only the types Chainwalk decodes are named; others pass through as their number.
/// </summary>
public enum LinkType
{
    /// <summary>BSD loopback: a 4-byte address family in the capturing host's byte order, then the IP packet.</summary>
    Null = 0,

    /// <summary>Ethernet II (with 802.1Q tags when the capture kept them).</summary>
    Ethernet = 1,

    /// <summary>The IP packet itself; IPv4 or IPv6 by its version nibble.</summary>
    Raw = 101,

    /// <summary>OpenBSD loopback: like <see cref="Null"/> but the family is big-endian.</summary>
    Loop = 108,

    /// <summary>Linux cooked capture v1 (<c>tcpdump -i any</c> before libpcap 1.10): a 16-byte pseudo header.</summary>
    LinuxSll = 113,

    /// <summary>Raw IPv4 only.</summary>
    Ipv4 = 228,

    /// <summary>Raw IPv6 only.</summary>
    Ipv6 = 229,

    /// <summary>Linux cooked capture v2: a 20-byte pseudo header that adds the interface index.</summary>
    LinuxSll2 = 276,
}

/// <summary>
/// The packet type of a Linux cooked capture header: the kernel's <c>skb->pkt_type</c> as
/// <c>include/uapi/linux/if_packet.h</c> numbers it.
/// </summary>
public enum SllPacketType
{
    /// <summary>Addressed to this host.</summary>
    Host = 0,

    Broadcast = 1,

    Multicast = 2,

    /// <summary>Seen in promiscuous mode, addressed to another host.</summary>
    OtherHost = 3,

    /// <summary>Sent by this host.</summary>
    Outgoing = 4,
}
