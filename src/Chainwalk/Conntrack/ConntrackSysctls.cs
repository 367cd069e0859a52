using Chainwalk.Host;

namespace Chainwalk.Conntrack;

/// <summary>
/// The conntrack sysctls a tracked packet reads (nf_conntrack_checksum, _acct, _max, _buckets, the TCP tracker's be_liberal,
/// loose, max_retrans, ignore_invalid_rst and its timeouts, the UDP/ICMP/generic timeouts), read once per host and
/// host generation instead of one lookup per value per packet. The kernel keeps them in struct nf_conntrack_net and
/// nf_tcp_net (per namespace, read straight from memory); any change of the host's sysctls moves
/// the host's generation (<see cref="VirtualHost.Generation"/>), after which the next packet reads them again.
/// </summary>
internal sealed class ConntrackSysctls
{
    /// <summary>The last snapshot this thread made (per thread: hosts processed on other threads do not replace it).</summary>
    [ThreadStatic]
    private static ConntrackSysctls? _last;

    private readonly VirtualHost _host;
    private readonly long _generation;

    private ConntrackSysctls(VirtualHost host, long generation)
    {
        _host = host;
        _generation = generation;
        Checksum = Sysctls.Int(host, "net.netfilter.nf_conntrack_checksum", 1) != 0;
        TcpLiberal = Sysctls.Int(host, "net.netfilter.nf_conntrack_tcp_be_liberal", 0) != 0;
        TcpMaxRetrans = Sysctls.Int(host, "net.netfilter.nf_conntrack_tcp_max_retrans", 3);
        TcpRetransTimeout = Sysctls.Int(host, "net.netfilter.nf_conntrack_tcp_timeout_max_retrans", 300);
        TcpUnackTimeout = Sysctls.Int(host, "net.netfilter.nf_conntrack_tcp_timeout_unacknowledged", 300);
        Buckets = Sysctls.Int(host, "net.netfilter.nf_conntrack_buckets", 262144);
        Max = Sysctls.Int(host, "net.netfilter.nf_conntrack_max", 262144);
        Accounting = Sysctls.Int(host, "net.netfilter.nf_conntrack_acct", 0) != 0;
        UdpTimeout = Sysctls.Int(host, "net.netfilter.nf_conntrack_udp_timeout", 30);
        UdpStreamTimeout = Sysctls.Int(host, "net.netfilter.nf_conntrack_udp_timeout_stream", 120);
        IcmpTimeout = Sysctls.Int(host, "net.netfilter.nf_conntrack_icmp_timeout", 30);
        Icmpv6Timeout = Sysctls.Int(host, "net.netfilter.nf_conntrack_icmpv6_timeout", 30);
        GenericTimeout = Sysctls.Int(host, "net.netfilter.nf_conntrack_generic_timeout", 600);
        TcpTimeouts = new int[TcpTracker.StateCount];
        for (int s = 0; s < TcpTimeouts.Length; s++) TcpTimeouts[s] = TcpTracker.ReadStateTimeout(host, (TcpCtState)s);
    }

    /// <summary>The snapshot for <paramref name="host"/> as it is now.</summary>
    public static ConntrackSysctls For(VirtualHost host)
    {
        ConntrackSysctls? s = _last;
        long g = host.Generation;
        if (s is not null && ReferenceEquals(s._host, host) && s._generation == g) return s;
        s = new ConntrackSysctls(host, g);
        _last = s;
        return s;
    }

    /// <summary>Whether this is the snapshot of <paramref name="host"/> as it is now.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    public bool IsCurrentFor(VirtualHost host) => ReferenceEquals(_host, host) && _generation == host.Generation;

    /// <summary>nf_conntrack_checksum.</summary>
    public bool Checksum { get; }

    /// <summary>nf_conntrack_buckets: the size of the conntrack hash (<see cref="ConntrackTable.UseBuckets"/>).</summary>
    public int Buckets { get; }

    /// <summary>nf_conntrack_max (0 or less: no limit).</summary>
    public int Max { get; }

    /// <summary>nf_conntrack_acct: new connections get per-direction counters.</summary>
    public bool Accounting { get; }

    /// <summary>nf_conntrack_tcp_be_liberal.</summary>
    public bool TcpLiberal { get; }

    /// <summary>nf_conntrack_tcp_max_retrans.</summary>
    public int TcpMaxRetrans { get; }

    /// <summary>nf_conntrack_tcp_timeout_max_retrans.</summary>
    public int TcpRetransTimeout { get; }

    /// <summary>nf_conntrack_tcp_timeout_unacknowledged.</summary>
    public int TcpUnackTimeout { get; }

    /// <summary>nf_conntrack_udp_timeout (unreplied, or replied but not yet a stream).</summary>
    public int UdpTimeout { get; }

    /// <summary>nf_conntrack_udp_timeout_stream.</summary>
    public int UdpStreamTimeout { get; }

    /// <summary>nf_conntrack_icmp_timeout.</summary>
    public int IcmpTimeout { get; }

    /// <summary>nf_conntrack_icmpv6_timeout.</summary>
    public int Icmpv6Timeout { get; }

    /// <summary>nf_conntrack_generic_timeout.</summary>
    public int GenericTimeout { get; }

    /// <summary>The timeout of each TCP conntrack state (nf_conntrack_tcp_timeout_*), by <see cref="TcpCtState"/>.</summary>
    public int[] TcpTimeouts { get; }
}
