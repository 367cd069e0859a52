using System.Globalization;
using System.Text;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Host;

/// <summary>A network interface of the virtual host (what <c>ip link</c> shows).</summary>
public sealed class Link
{
    // Every setter moves the host's generation (VirtualHost.Generation): routing decisions depend on these.
    private string _name = "";
    private string _kind = "dummy";
    private bool _up;
    private string _mac = "00:00:00:00:00:00";
    private int _mtu = 1500;
    private string? _peer;
    private int _index;

    private T Changed<T>(T value)
    {
        Host?.Changed();
        return value;
    }

    /// <summary>The host whose list of links holds this link (set by <see cref="HostList{T}"/>); null while on none.</summary>
    internal VirtualHost? Host { get; set; }

    public required string Name { get => _name; set => _name = Changed(value); }

    /// <summary>loopback, dummy, veth, ether …</summary>
    public string Kind { get => _kind; set => _kind = Changed(value); }

    public bool Up { get => _up; set => _up = Changed(value); }

    public string Mac { get => _mac; set => _mac = Changed(value); }

    public int Mtu { get => _mtu; set => _mtu = Changed(value); }

    /// <summary>The other end of a veth pair.</summary>
    public string? Peer { get => _peer; set => _peer = Changed(value); }

    /// <summary>Interface index, as the kernel numbers them (lo = 1).</summary>
    public int Index { get => _index; set => _index = Changed(value); }

    /// <summary>
    /// Set once the link has been up: the kernel attaches its default qdisc on the first open
    /// (noop before, noqueue for lo, dummy and veth after), and keeps it when the link goes down.
    /// </summary>
    public bool EverUp { get; set; }
}

/// <summary>An address on an interface (<c>ip addr</c>).</summary>
public sealed record InterfaceAddress(string Device, IpFamily Family, UInt128 Address, int PrefixLength)
{
    /// <summary>The broadcast address given with <c>brd</c> (IPv4 only), else none.</summary>
    public UInt128? Broadcast { get; init; }

    /// <summary>An IPv6 address whose duplicate address detection has not run yet (no carrier since it was added).</summary>
    public bool Tentative { get; init; }

    /// <summary>Added with <c>nodad</c> (IFA_F_NODAD): never tentative, and ip shows the flag.</summary>
    public bool NoDad { get; init; }

    /// <summary>The IPv4 label (<c>label eth0:1</c>) shown instead of the device name; null is the device name.</summary>
    public string? Label { get; init; }

    public string Text => $"{IpNet.FormatAddress(Address, Family)}/{PrefixLength.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// A route added with <c>ip route add</c> to the main table. The routes the kernel makes for addresses
/// (connected, local, broadcast, fe80::/64, multicast) are not stored: <see cref="Network"/> derives them.
/// </summary>
public sealed record Route(IpFamily Family, UInt128 Prefix, int PrefixLength, string? Device, UInt128? Via, UInt128? Src, int Metric = 0)
{
    /// <summary>The routing protocol (<c>proto</c>); null is "boot", what <c>ip route add</c> sets.</summary>
    public string? Proto { get; init; }

    /// <summary>The routing table (<c>table N</c>) by the name ip prints; null is main.</summary>
    public string? Table { get; init; }

    public bool IsDefault => PrefixLength == 0;

    public string PrefixText => IsDefault ? "default" : $"{IpNet.FormatAddress(Prefix, Family)}/{PrefixLength.ToString(CultureInfo.InvariantCulture)}";
}

/// <summary>
/// The virtual host: interfaces, addresses, routes, sysctls, the clock, and the IPv4 and IPv6
/// rulesets. A new host is a fresh network namespace after `ip link set lo up`: lo with 127.0.0.1/8 and ::1/128, no tables,
/// kernel-default sysctls.
/// </summary>
public sealed class VirtualHost
{
    public VirtualHost()
    {
        Links = new(this);
        Addresses = new(this);
        Routes = new(this);
        Sysctls = new(this);
        HiddenRoutes = new(this);
        RouteTables = new(this);
    }

    /// <summary>
    /// Moves on every change of the host's links, addresses, routes, hidden routes, route tables and sysctls (what routing
    /// and conntrack read): what the pipeline derives from them (the FIB, per-device settings, parsed sysctls, input route
    /// memos, the flow path's memos) is kept while it stands and made again when it moved, as the kernel's FIB and nexthop
    /// caches are invalidated by its routing generation id (rt_genid, per network namespace). Over-counting is harmless (a
    /// rebuild); a change it did not see would be a stale answer, so every mutable part of the host reports here. A value
    /// no other host or rule set ever has (<see cref="GenerationSequence"/>).
    /// </summary>
    public long Generation
    {
        [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
        get => Volatile.Read(ref _generation);
    }

    private long _generation = GenerationSequence.Next();

    /// <summary>Something a routing decision may depend on changed.</summary>
    internal void Changed() => Volatile.Write(ref _generation, GenerationSequence.Next());

    public HostList<Link> Links { get; }

    public HostList<InterfaceAddress> Addresses { get; }

    public HostList<Route> Routes { get; }

    public SysctlTable Sysctls { get; }

    /// <summary>Seconds since the host was created, on the host's own clock.</summary>
    public double Clock { get; set; }

    /// <summary>Kernel-made routes that were deleted with <c>ip route del</c> (<see cref="RouteView.Key"/>).</summary>
    public HostSortedSet HiddenRoutes { get; }

    /// <summary>Numbered routing tables that have been created (by a route added to them); the kernel keeps them when emptied.</summary>
    public HostSortedSet RouteTables { get; }

    /// <summary>The index the next new interface gets (the kernel does not reuse indexes).</summary>
    public int NextIfIndex { get; set; } = 2;

    public Ruleset V4 { get; set; } = new(IpFamily.V4);

    public Ruleset V6 { get; set; } = new(IpFamily.V6);

    public Ruleset Rules(IpFamily family) => family == IpFamily.V4 ? V4 : V6;

    public void SetRules(Ruleset ruleset)
    {
        if (ruleset.Family == IpFamily.V4) V4 = ruleset;
        else V6 = ruleset;
    }

    public static VirtualHost CreateFresh()
    {
        var h = new VirtualHost();
        h.Links.Add(new Link { Name = "lo", Kind = "loopback", Up = true, EverUp = true, Mac = "00:00:00:00:00:00", Mtu = 65536, Index = 1 });
        h.Addresses.Add(new InterfaceAddress("lo", IpFamily.V4, 0x7f000001, 8));
        h.Addresses.Add(new InterfaceAddress("lo", IpFamily.V6, UInt128.One, 128));
        foreach (var kv in Sysctl.Defaults) h.Sysctls[kv.Key] = kv.Value;
        return h;
    }

    public Link? FindLink(string name)
    {
        foreach (Link l in Links)
        {
            if (string.Equals(l.Name, name, StringComparison.Ordinal)) return l;
        }
        return null;
    }

    /// <summary>What the routing code derived from this host for one <see cref="Generation"/> (Routing.Fib); null until asked.</summary>
    internal object? Derived { get; set; }

    public int NextIndex() => Math.Max(NextIfIndex, Links.Count == 0 ? 1 : Links.Max(l => l.Index) + 1);

    public string? GetSysctl(string key) => Sysctls.TryGetValue(key, out string? v) ? v : null;
}
