using Chainwalk.Host;
using Chainwalk.Net;

namespace Chainwalk.Routing;

/// <summary>The kernel's route types (RTN_*), as a lookup returns them and xt_addrtype names them.</summary>
public enum RouteType
{
    Unspec,
    Unicast,
    Local,
    Broadcast,
    Anycast,
    Multicast,
    Blackhole,
    Unreachable,
    Prohibit,
    Throw,
}

/// <summary>Why a lookup failed, as the errno <c>ip route get</c> reports (RTNETLINK answers: …).</summary>
public enum RouteError
{
    None,

    /// <summary>ENETUNREACH: no route matched (or the output device is down).</summary>
    NetworkUnreachable,

    /// <summary>EHOSTUNREACH: an unreachable route, or no route for a packet that may not be forwarded.</summary>
    HostUnreachable,

    /// <summary>EINVAL: a martian source or destination, a failed source validation, a blackhole route.</summary>
    InvalidArgument,

    /// <summary>EACCES: a prohibit route.</summary>
    PermissionDenied,

    /// <summary>ENODEV: the named interface does not exist.</summary>
    NoSuchDevice,
}

/// <summary>A routing question: the destination, and what the caller knows about the packet.</summary>
public sealed record RouteQuery(IpFamily Family, UInt128 Destination)
{
    /// <summary>The source address (<c>from</c>); for input it is the packet's source.</summary>
    public UInt128? Source { get; init; }

    /// <summary>The interface the packet arrived on (<c>iif</c>): an input (forward or local delivery) decision.</summary>
    public string? InputInterface { get; init; }

    /// <summary>The interface the sender is bound to (<c>oif</c>).</summary>
    public string? OutputInterface { get; init; }

    /// <summary>The packet mark (fwmark); kept for policy routing, which the virtual host does not have yet.</summary>
    public uint Mark { get; init; }
}

/// <summary>The kernel's answer to a <see cref="RouteQuery"/>.</summary>
public sealed record RouteResult(RouteType Type, RouteError Error)
{
    /// <summary>The device the packet leaves by: "lo" for local delivery, as <c>ip route get</c> prints it.</summary>
    public string? Device { get; init; }

    public UInt128? Gateway { get; init; }

    /// <summary>
    /// The source address of a locally generated packet: IPv4, the given source, else the kernel's pick
    /// (the route's src, else inet_select_addr); IPv6, the route's src, else the RFC 6724 pick
    /// (ipv6_dev_get_saddr), as <c>ip -6 route get</c> prints it even when a source was given. Null on
    /// input decisions and when no address fits.
    /// </summary>
    public UInt128? PreferredSource { get; init; }

    /// <summary>The table entry the answer came from (null when none did: limited broadcast to an interface, on-link guess, 0.0.0.0).</summary>
    public RouteView? Route { get; init; }

    public bool Ok => Error == RouteError.None;

    /// <summary>The errno text (strerror) after "RTNETLINK answers: ".</summary>
    public string ErrorMessage => MessageOf(Error);

    public static string MessageOf(RouteError e) => e switch
    {
        RouteError.None => string.Empty,
        RouteError.NetworkUnreachable => "Network is unreachable",
        RouteError.HostUnreachable => "No route to host",
        RouteError.InvalidArgument => "Invalid argument",
        RouteError.PermissionDenied => "Permission denied",
        RouteError.NoSuchDevice => "No such device",
        _ => e.ToString(),
    };

    public static RouteResult Fail(RouteError e) => new(e switch
    {
        RouteError.HostUnreachable => RouteType.Unreachable,
        RouteError.PermissionDenied => RouteType.Prohibit,
        _ => RouteType.Unreachable,
    }, e);
}

/// <summary>What happens to a packet that arrived on an interface.</summary>
public enum InputVerdict
{
    /// <summary>Delivered to the host (route type local, broadcast or a joined multicast group): INPUT.</summary>
    Local,

    /// <summary>Routed out again: FORWARD, then POSTROUTING on <see cref="RouteResult.Device"/>.</summary>
    Forward,

    /// <summary>Dropped by the routing code; <see cref="InputDecision.Reason"/> says why.</summary>
    Drop,
}

/// <summary>Why the kernel drops an arriving packet while routing it.</summary>
public enum InputDropReason
{
    None,
    MartianSource,
    MartianDestination,

    /// <summary>fib_validate_source refused the source: reverse path filter, or a source that is our own address.</summary>
    SourceValidation,
    NoRoute,

    /// <summary>Forwarding is off (net.ipv4.conf.IFACE.forwarding / net.ipv6.conf.all.forwarding).</summary>
    ForwardingDisabled,

    /// <summary>A route of type unreachable, prohibit or blackhole.</summary>
    RejectRoute,

    /// <summary>IPv6: a link-local source or destination may not be forwarded (ip6_forward answers "beyond scope").</summary>
    BeyondScope,

    /// <summary>Multicast to a group the host has not joined.</summary>
    NotJoined,
}

/// <summary>The input-side decision for a packet arriving on an interface.</summary>
public sealed record InputDecision(InputVerdict Verdict, InputDropReason Reason, RouteResult Route)
{
    /// <summary>The kernel would send an ICMP redirect: the packet leaves by the interface it came in on.</summary>
    public bool Redirect { get; init; }

    /// <summary>IPv6: the drop happens in ipv6_rcv before PREROUTING (loopback or multicast source, loopback destination on a wire).</summary>
    public bool BeforePrerouting { get; init; }
}
