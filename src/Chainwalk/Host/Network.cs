using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Chainwalk.Net;

namespace Chainwalk.Host;

/// <summary>A refused network change, with the message and exit code <c>ip</c> reports for it.</summary>
public sealed class NetworkException(string message, int exitCode) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

/// <summary>A route as <c>ip route</c> lists it: stored (ip route add) or made by the kernel for an address.</summary>
public sealed record RouteView(
    IpFamily Family,
    string Type,
    string Table,
    UInt128 Prefix,
    int PrefixLength,
    string? Device,
    UInt128? Via,
    UInt128? Src,
    int Metric,
    string? Proto,
    string? Scope,
    bool LinkDown,
    int Order)
{
    public bool IsKernel => Proto == "kernel";

    /// <summary>How a deleted kernel route is remembered in network.conf ("hide" lines).</summary>
    public string Key => string.Create(CultureInfo.InvariantCulture,
        $"{(Family == IpFamily.V4 ? "inet" : "inet6")} {Type} {Table} {IpNet.FormatAddress(Prefix, Family)}/{PrefixLength} {Device}");
}

/// <summary>
/// The kernel's side of links, addresses and routes on the virtual host: what creating a veth, bringing
/// a link up or adding an address does to the other state (carrier, link-local addresses, connected,
/// local and broadcast routes), as Linux 6.x does it (net/ipv4/fib_frontend.c fib_add_ifaddr,
/// net/ipv6/addrconf.c, drivers/net/veth.c). Every operation validates first and changes nothing
/// when it throws.
/// </summary>
public static class Network
{
    public const int MaxNameLength = 15;

    public static bool HasCarrier(VirtualHost host, Link link)
    {
        if (!link.Up) return false;
        if (link.Kind != "veth") return true;
        return link.Peer is not null && host.FindLink(link.Peer) is { Up: true };
    }

    /// <summary>IF_OPER state as <c>ip link</c> prints it.</summary>
    public static string OperState(VirtualHost host, Link link)
    {
        if (!link.Up) return "DOWN";
        if (link.Kind == "veth") return HasCarrier(host, link) ? "UP" : "LOWERLAYERDOWN";
        return "UNKNOWN";
    }

    /// <summary>The flags between angle brackets in <c>ip link</c> output.</summary>
    public static string Flags(VirtualHost host, Link link)
    {
        bool carrier = HasCarrier(host, link);
        var f = new List<string>();
        if (link.Up && !carrier) f.Add("NO-CARRIER");
        switch (link.Kind)
        {
            case "loopback": f.Add("LOOPBACK"); break;
            case "dummy": f.Add("BROADCAST"); f.Add("NOARP"); break;
            default: f.Add("BROADCAST"); f.Add("MULTICAST"); break;
        }
        if (link.Up) f.Add("UP");
        if (carrier) f.Add("LOWER_UP");
        if (link.Kind == "veth" && (link.Peer is null || host.FindLink(link.Peer) is not { Up: true })) f.Add("M-DOWN");
        return string.Join(',', f);
    }

    public static string Qdisc(Link link) => link.EverUp ? "noqueue" : "noop";

    /// <summary>A locally administered unicast MAC derived from the name and index: random-looking, stable.</summary>
    public static string MakeMac(string name, int index)
    {
        byte[] h = SHA256.HashData(Encoding.UTF8.GetBytes("chainwalk-mac:" + name + ":" + index.ToString(CultureInfo.InvariantCulture)));
        h[0] = (byte)((h[0] & 0xfe) | 0x02);
        return string.Join(':', h.Take(6).Select(b => b.ToString("x2", CultureInfo.InvariantCulture)));
    }

    public static bool TryParseMac(string text, out string mac)
    {
        mac = string.Empty;
        string[] p = text.Split(':');
        if (p.Length != 6) return false;
        var parts = new List<string>();
        foreach (string x in p)
        {
            if (x.Length is < 1 or > 2 || !byte.TryParse(x, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out byte b)) return false;
            parts.Add(b.ToString("x2", CultureInfo.InvariantCulture));
        }
        mac = string.Join(':', parts);
        return true;
    }

    /// <summary>The modified EUI-64 link-local address the kernel gives an Ethernet link (addrconf_ifid_eui48).</summary>
    public static UInt128 LinkLocalFor(string mac)
    {
        byte[] m = mac.Split(':').Select(x => byte.Parse(x, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
        UInt128 v = (UInt128)0xfe80 << 112;
        ulong iid = ((ulong)(m[0] ^ 0x02) << 56) | ((ulong)m[1] << 48) | ((ulong)m[2] << 40) | (0xffUL << 32) | (0xfeUL << 24)
            | ((ulong)m[3] << 16) | ((ulong)m[4] << 8) | m[5];
        return v | iid;
    }

    public static Link RequireLink(VirtualHost host, string name) =>
        host.FindLink(name) ?? throw new NetworkException($"Cannot find device \"{name}\"", 1);

    /// <summary><c>ip link add NAME type dummy|veth [peer name PEER]</c>.</summary>
    public static void AddLink(VirtualHost host, string name, string kind, string? peerName)
    {
        if (host.FindLink(name) is not null) throw new NetworkException("RTNETLINK answers: File exists", 2);
        if (kind is not ("dummy" or "veth")) throw new NetworkException("Error: Unknown device type.", 2);
        if (kind == "dummy")
        {
            int index = host.NextIndex();
            host.NextIfIndex = index + 1;
            host.Links.Add(new Link { Name = name, Kind = "dummy", Index = index, Mac = MakeMac(name, index) });
            AddInterfaceSysctls(host, name);
            return;
        }
        if (peerName is null)
        {
            int n = 0;
            while (host.FindLink("veth" + n.ToString(CultureInfo.InvariantCulture)) is not null || ("veth" + n.ToString(CultureInfo.InvariantCulture)) == name) n++;
            peerName = "veth" + n.ToString(CultureInfo.InvariantCulture);
        }
        if (host.FindLink(peerName) is not null || peerName == name) throw new NetworkException("RTNETLINK answers: File exists", 2);
        // veth_newlink registers the peer first, so it gets the lower index.
        int peerIndex = host.NextIndex();
        int mainIndex = peerIndex + 1;
        host.NextIfIndex = mainIndex + 1;
        host.Links.Add(new Link { Name = peerName, Kind = "veth", Index = peerIndex, Mac = MakeMac(peerName, peerIndex), Peer = name });
        host.Links.Add(new Link { Name = name, Kind = "veth", Index = mainIndex, Mac = MakeMac(name, mainIndex), Peer = peerName });
        AddInterfaceSysctls(host, peerName);
        AddInterfaceSysctls(host, name);
    }

    public static void DeleteLink(VirtualHost host, string name)
    {
        Link link = RequireLink(host, name);
        if (link.Kind == "loopback") throw new NetworkException("RTNETLINK answers: Operation not supported", 2);
        var gone = new List<string> { link.Name };
        if (link.Peer is not null && host.FindLink(link.Peer) is not null) gone.Add(link.Peer);
        foreach (string n in gone)
        {
            host.HiddenRoutes.RemoveWhere(k => k.EndsWith(" " + n, StringComparison.Ordinal));
            host.Links.RemoveAll(l => l.Name == n);
            host.Addresses.RemoveAll(a => a.Device == n);
            host.Routes.RemoveAll(r => r.Device == n);
            RemoveInterfaceSysctls(host, n);
        }
    }

    public static void SetUp(VirtualHost host, string name, bool up)
    {
        Link link = RequireLink(host, name);
        if (link.Up == up) return;
        Link? peer = link.Peer is null ? null : host.FindLink(link.Peer);
        if (up)
        {
            link.Up = true;
            link.EverUp = true;
            // fib_add_ifaddr / addrconf run again for every address of the link.
            host.HiddenRoutes.RemoveWhere(k => k.EndsWith(" " + name, StringComparison.Ordinal));
            if (link.Kind == "loopback" && !host.Addresses.Any(a => a.Device == name && a.Family == IpFamily.V6 && a.Address == UInt128.One))
            {
                InsertV6(host, new InterfaceAddress(name, IpFamily.V6, UInt128.One, 128));
            }
            // The link that opens gets its link-local address first (NETDEV_UP); the peer's carrier
            // change arrives later through linkwatch.
            EnsureLinkLocal(host, link);
            if (peer is not null) EnsureLinkLocal(host, peer);
            return;
        }
        link.Up = false;
        // addrconf_ifdown with keep_addr_on_down=0: every IPv6 address goes; IPv4 addresses stay.
        host.Addresses.RemoveAll(a => a.Device == name && a.Family == IpFamily.V6);
        // fib_sync_down_dev / rt6_sync_down_dev: routes through the link are flushed.
        host.Routes.RemoveAll(r => r.Device == name);
    }

    private static void EnsureLinkLocal(VirtualHost host, Link link)
    {
        if (!HasCarrier(host, link)) return;
        // Duplicate address detection of the waiting addresses ends (at once, on the virtual host).
        for (int i = 0; i < host.Addresses.Count; i++)
        {
            if (host.Addresses[i] is { Tentative: true } t && t.Device == link.Name) host.Addresses[i] = t with { Tentative = false };
        }
        if (link.Kind == "loopback") return;
        if (GetSysctlFlag(host, $"net.ipv6.conf.{link.Name}.disable_ipv6")) return;
        if (host.Addresses.Any(a => a.Device == link.Name && a.Family == IpFamily.V6 && IsLinkLocal(a.Address))) return;
        InsertV6(host, new InterfaceAddress(link.Name, IpFamily.V6, LinkLocalFor(link.Mac), 64));
    }

    private static bool GetSysctlFlag(VirtualHost host, string key) => host.GetSysctl(key) is { } v && v != "0";

    public static bool IsLinkLocal(UInt128 a) => (a >> 118) == (0xfe80 >> 6);

    private static void InsertV6(VirtualHost host, InterfaceAddress a) => host.Addresses.Add(a);

    public static void SetMtu(VirtualHost host, string name, int mtu)
    {
        Link link = RequireLink(host, name);
        int max = link.Kind switch { "veth" => 65535, "loopback" => 65536, _ => int.MaxValue };
        if (mtu > max) throw new NetworkException("Error: mtu greater than device maximum.", 2);
        if (mtu < (link.Kind == "veth" ? 68 : 0)) throw new NetworkException("Error: mtu less than device minimum.", 2);
        link.Mtu = mtu;
    }

    /// <summary>
    /// <c>ip link set NAME name NEW</c>: the link keeps its index, addresses and routes under the new name;
    /// its per-link sysctls move with it (devinet_sysctl / addrconf re-register them under the new name).
    /// </summary>
    public static void Rename(VirtualHost host, string name, string newName)
    {
        Link link = RequireLink(host, name);
        if (newName == name) return;
        if (host.FindLink(newName) is not null) throw new NetworkException("RTNETLINK answers: File exists", 2);
        link.Name = newName;
        foreach (string k in host.HiddenRoutes.Where(k => k.EndsWith(" " + name, StringComparison.Ordinal)).ToList())
        {
            host.HiddenRoutes.Remove(k);
            host.HiddenRoutes.Add(k[..^name.Length] + newName);
        }
        if (link.Peer is not null && host.FindLink(link.Peer) is { } peer) peer.Peer = newName;
        for (int i = 0; i < host.Addresses.Count; i++)
        {
            if (host.Addresses[i].Device == name) host.Addresses[i] = host.Addresses[i] with { Device = newName };
        }
        for (int i = 0; i < host.Routes.Count; i++)
        {
            if (host.Routes[i].Device == name) host.Routes[i] = host.Routes[i] with { Device = newName };
        }
        foreach (string fam in new[] { "net.ipv4.conf.", "net.ipv6.conf." })
        {
            string from = fam + name + ".";
            foreach (string k in host.Sysctls.Keys.Where(k => k.StartsWith(from, StringComparison.Ordinal)).ToList())
            {
                host.Sysctls[fam + newName + "." + k[from.Length..]] = host.Sysctls[k];
                host.Sysctls.Remove(k);
            }
        }
    }

    public static void SetMac(VirtualHost host, string name, string mac)
    {
        Link link = RequireLink(host, name);
        link.Mac = mac;
    }

    public static string AddressScope(InterfaceAddress a)
    {
        if (a.Family == IpFamily.V4) return (a.Address >> 24) == 127 ? "host" : "global";
        if (a.Address == UInt128.One) return "host";
        return IsLinkLocal(a.Address) ? "link" : "global";
    }

    private static UInt128 Mask(IpFamily f, int len) => IpNet.PrefixMask(f, len);

    private static bool SameSubnet(InterfaceAddress x, InterfaceAddress y) =>
        x.Family == y.Family && x.PrefixLength == y.PrefixLength && (x.Address & Mask(x.Family, x.PrefixLength)) == (y.Address & Mask(y.Family, y.PrefixLength));

    /// <summary>An IPv4 address is secondary when an earlier one on the link covers the same subnet.</summary>
    public static bool IsSecondary(VirtualHost host, InterfaceAddress a)
    {
        if (a.Family != IpFamily.V4) return false;
        foreach (InterfaceAddress o in host.Addresses)
        {
            if (ReferenceEquals(o, a) || o == a) return false;
            if (o.Device == a.Device && SameSubnet(o, a)) return true;
        }
        return false;
    }

    private static InterfaceAddress PrimaryOf(VirtualHost host, InterfaceAddress a) =>
        host.Addresses.First(o => o.Device == a.Device && SameSubnet(o, a));

    /// <summary>The addresses of a link in the order <c>ip addr</c> lists them.</summary>
    public static IEnumerable<InterfaceAddress> AddressesOf(VirtualHost host, string dev, IpFamily family)
    {
        var mine = host.Addresses.Where(a => a.Device == dev && a.Family == family).ToList();
        if (family == IpFamily.V4)
        {
            // __inet_insert_ifa: primaries in order, secondaries at the end.
            return mine.Where(a => !IsSecondary(host, a)).Concat(mine.Where(a => IsSecondary(host, a)));
        }
        // ipv6_link_dev_addr: sorted by scope (global first), the newest first within a scope.
        return mine.Select((a, i) => (a, i)).OrderBy(t => IsLinkLocal(t.a.Address) || t.a.Address == UInt128.One ? 1 : 0).ThenByDescending(t => t.i).Select(t => t.a);
    }

    public static void AddAddress(VirtualHost host, InterfaceAddress a)
    {
        Link link = RequireLink(host, a.Device);
        host.HiddenRoutes.RemoveWhere(k => k.EndsWith(" " + a.Device, StringComparison.Ordinal));
        if (a.Family == IpFamily.V4)
        {
            if (host.Addresses.Any(o => o.Device == a.Device && o.Family == IpFamily.V4 && o.Address == a.Address && SameSubnet(o, a)))
            {
                throw new NetworkException("Error: ipv4: Address already assigned.", 2);
            }
            host.Addresses.Add(a);
            return;
        }
        if (host.Addresses.Any(o => o.Device == a.Device && o.Family == IpFamily.V6 && o.Address == a.Address))
        {
            throw new NetworkException("Error: ipv6: address already assigned.", 2);
        }
        // Duplicate address detection runs when the link has carrier; Chainwalk lets it finish at once.
        InsertV6(host, a with { Tentative = !a.NoDad && !HasCarrier(host, link) });
    }

    /// <summary>Deletes an address; <paramref name="prefixLength"/> null matches any length (iproute2's wildcard deletion).</summary>
    public static void DeleteAddress(VirtualHost host, string dev, IpFamily family, UInt128 address, int? prefixLength)
    {
        RequireLink(host, dev);
        InterfaceAddress? a = host.Addresses.FirstOrDefault(o => o.Device == dev && o.Family == family && o.Address == address && (prefixLength is null || o.PrefixLength == prefixLength));
        if (a is null)
        {
            throw family == IpFamily.V4
                ? new NetworkException("Error: ipv4: Address not found.", 2)
                : new NetworkException("Error: ipv6: address not found.", 2);
        }
        var gone = new List<InterfaceAddress> { a };
        if (family == IpFamily.V4 && !IsSecondary(host, a))
        {
            // promote_secondaries=0: the secondaries of a deleted primary go with it.
            gone.AddRange(host.Addresses.Where(o => !ReferenceEquals(o, a) && o.Device == dev && SameSubnet(o, a)));
        }
        foreach (InterfaceAddress g in gone)
        {
            host.Addresses.Remove(g);
            if (g.Family == IpFamily.V4 && !host.Addresses.Any(o => o.Family == IpFamily.V4 && o.Address == g.Address))
            {
                // fib_sync_down_addr: routes that used it as preferred source go too.
                host.Routes.RemoveAll(r => r.Family == IpFamily.V4 && r.Src == g.Address);
            }
        }
        DisableIpv4IfNoAddress(host, dev);
    }

    /// <summary>fib_inetaddr_event: when the last IPv4 address of a link goes, IPv4 routes through it go too.</summary>
    private static void DisableIpv4IfNoAddress(VirtualHost host, string dev)
    {
        if (!host.Addresses.Any(a => a.Device == dev && a.Family == IpFamily.V4))
        {
            host.Routes.RemoveAll(r => r.Family == IpFamily.V4 && r.Device == dev);
        }
    }

    public static void FlushAddresses(VirtualHost host, string dev, IpFamily? family)
    {
        RequireLink(host, dev);
        var gone = host.Addresses.Where(a => a.Device == dev && (family is null || a.Family == family)).ToList();
        foreach (InterfaceAddress g in gone) host.Addresses.Remove(g);
        host.Routes.RemoveAll(r => r.Family == IpFamily.V4 && r.Src is { } s && gone.Any(g => g.Family == IpFamily.V4 && g.Address == s));
        DisableIpv4IfNoAddress(host, dev);
    }

    /// <summary>Every route of one family in the given table ("main", "local" or "all"), in the kernel's dump order.</summary>
    public static List<RouteView> Routes(VirtualHost host, IpFamily family, string table)
    {
        var all = new List<RouteView>();
        int order = 0;
        foreach (InterfaceAddress a in host.Addresses)
        {
            order++;
            if (a.Family != family) continue;
            Link? link = host.FindLink(a.Device);
            if (link is null) continue;
            bool carrier = HasCarrier(host, link);
            if (family == IpFamily.V4) KernelRoutesV4(host, a, link, carrier, order, all);
            else KernelRoutesV6(host, a, link, carrier, order, all);
        }
        foreach (Route r in host.Routes)
        {
            order++;
            if (r.Family != family) continue;
            Link? link = r.Device is null ? null : host.FindLink(r.Device);
            bool linkDown = link is not null && !HasCarrier(host, link);
            string? scope = family == IpFamily.V4 && r.Via is null ? "link" : null;
            int metric = r.Metric;
            all.Add(new RouteView(family, "unicast", r.Table ?? "main", r.Prefix, r.PrefixLength, r.Device, r.Via, r.Src, metric, r.Proto, scope, linkDown, 100000 + order));
        }
        IEnumerable<RouteView> chosen = all.Where(r => (table == "all" || r.Table == table) && !(r.IsKernel && host.HiddenRoutes.Contains(r.Key)));
        var list = chosen.DistinctBy(r => (r.Type, r.Table, r.Prefix, r.PrefixLength, r.Device, r.Metric, r.Via)).ToList();
        list.Sort((x, y) => Compare(x, y));
        // Tables are dumped in the order of their ids (main 254, local 255 after any numbered table).
        if (table == "all") list = list.OrderBy(r => TableId(r.Table)).ToList();
        return list;
    }

    public static int TableId(string name) => name switch
    {
        "main" => 254,
        "local" => 255,
        "default" => 253,
        _ => int.Parse(name, CultureInfo.InvariantCulture),
    };

    /// <summary>A table's name as ip prints it: main, local, default, else the number.</summary>
    public static string? TableName(string text) => text switch
    {
        "main" or "254" => "main",
        "local" or "255" => "local",
        "default" or "253" => "default",
        _ => uint.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out uint id) && id is > 0 and < 253 or > 255 ? id.ToString(CultureInfo.InvariantCulture) : null,
    };

    private static int Compare(RouteView x, RouteView y)
    {
        int c;
        if (x.Family == IpFamily.V4)
        {
            // fib_trie: keys in ascending order; longer prefixes first on one key.
            c = x.Prefix.CompareTo(y.Prefix);
            if (c != 0) return c;
            c = y.PrefixLength.CompareTo(x.PrefixLength);
            if (c != 0) return c;
        }
        else
        {
            // fib6 walker: post-order over the radix tree, so more specific prefixes come before the
            // prefix that contains them, and ::/0 last.
            int common = Math.Min(x.PrefixLength, y.PrefixLength);
            UInt128 m = IpNet.PrefixMask(IpFamily.V6, common);
            if ((x.Prefix & m) != (y.Prefix & m)) return (x.Prefix & m).CompareTo(y.Prefix & m);
            c = y.PrefixLength.CompareTo(x.PrefixLength);
            if (c != 0) return c;
        }
        c = x.Metric.CompareTo(y.Metric);
        if (c != 0) return c;
        return x.Order.CompareTo(y.Order);
    }

    private static void KernelRoutesV4(VirtualHost host, InterfaceAddress a, Link link, bool carrier, int order, List<RouteView> into)
    {
        bool secondary = IsSecondary(host, a);
        UInt128 prim = secondary ? PrimaryOf(host, a).Address : a.Address;
        // fib_add_ifaddr: the local route exists whatever the link state.
        into.Add(new RouteView(IpFamily.V4, "local", "local", a.Address, 32, link.Name, null, prim, 0, "kernel", "host", false, order));
        // Routes of type local (scope host) survive the link going down; lo's 127.0.0.0/8 is one.
        bool loopbackKept = link.Kind == "loopback" && link.EverUp;
        if ((!link.Up && !loopbackKept) || secondary) return;
        UInt128 mask = Mask(IpFamily.V4, a.PrefixLength);
        UInt128 prefix = a.Address & mask;
        if (prefix != a.Address || a.PrefixLength < 32)
        {
            if (link.Kind == "loopback")
            {
                into.Add(new RouteView(IpFamily.V4, "local", "local", prefix, a.PrefixLength, link.Name, null, a.Address, 0, "kernel", "host", false, order));
            }
            else
            {
                into.Add(new RouteView(IpFamily.V4, "unicast", "main", prefix, a.PrefixLength, link.Name, null, a.Address, 0, "kernel", "link", !carrier, order));
            }
            if (a.PrefixLength < 31 && link.Up)
            {
                UInt128 bcast = prefix | (~mask & uint.MaxValue);
                into.Add(new RouteView(IpFamily.V4, "broadcast", "local", bcast, 32, link.Name, null, a.Address, 0, "kernel", "link", !carrier, order));
            }
        }
        if (a.Broadcast is { } b && b != uint.MaxValue && link.Up)
        {
            into.Add(new RouteView(IpFamily.V4, "broadcast", "local", b, 32, link.Name, null, a.Address, 0, "kernel", "link", !carrier, order));
        }
    }

    private static void KernelRoutesV6(VirtualHost host, InterfaceAddress a, Link link, bool carrier, int order, List<RouteView> into)
    {
        _ = host;
        if (!link.Up) return;
        bool lo = link.Kind == "loopback";
        if (!lo && a.PrefixLength < 128)
        {
            UInt128 prefix = a.Address & Mask(IpFamily.V6, a.PrefixLength);
            into.Add(new RouteView(IpFamily.V6, "unicast", "main", prefix, a.PrefixLength, link.Name, null, null, 256, "kernel", null, !carrier, order));
        }
        // The local route is installed when duplicate address detection has passed.
        if (!a.Tentative) into.Add(new RouteView(IpFamily.V6, "local", "local", a.Address, 128, link.Name, null, null, 0, "kernel", null, false, order));
        if (!lo && IsLinkLocal(a.Address))
        {
            // addrconf_add_mroute, made with the link-local address when the link becomes ready.
            into.Add(new RouteView(IpFamily.V6, "multicast", "local", (UInt128)0xff00 << 112, 8, link.Name, null, null, 256, "kernel", null, !carrier, order));
        }
    }

    private static bool IsLocalAddress(VirtualHost host, IpFamily family, UInt128 address) =>
        host.Addresses.Any(a => a.Family == family && a.Address == address);

    /// <summary><c>ip route add</c> (or <c>replace</c>): checks the nexthop as fib_check_nh / ip6_validate_gw do.</summary>
    public static void AddRoute(VirtualHost host, Route route, bool replace = false)
    {
        IpFamily f = route.Family;
        Link? dev = route.Device is null ? null : RequireLink(host, route.Device);
        if (f == IpFamily.V4 && (route.Prefix & ~Mask(f, route.PrefixLength) & uint.MaxValue) != 0)
        {
            throw new NetworkException("Error: Invalid prefix for given prefix length.", 2);
        }
        if (f == IpFamily.V6) route = route with { Prefix = route.Prefix & Mask(f, route.PrefixLength) };
        if (route.Via is null && dev is null) throw new NetworkException("RTNETLINK answers: No such device", 2);
        if (dev is not null && !dev.Up)
        {
            throw new NetworkException(f == IpFamily.V4 ? "Error: Device for nexthop is not up." : "Error: Nexthop device is not up.", 2);
        }
        string? outDev = dev?.Name;
        if (route.Via is { } gw)
        {
            if (f == IpFamily.V4)
            {
                InterfaceAddress? local = host.Addresses.FirstOrDefault(a => a.Family == f && a.Address == gw && (dev is null || a.Device == dev.Name));
                RouteView? via = local is null ? DirectRouteTo(host, f, gw, dev?.Name) : null;
                if (local is null && via is null) throw new NetworkException("Error: Nexthop has invalid gateway.", 2);
                outDev ??= local?.Device ?? via!.Device;
            }
            else
            {
                if (IsLinkLocal(gw) && dev is null) throw new NetworkException("Error: Egress device not specified.", 2);
                if (IsLocalAddress(host, f, gw)) throw new NetworkException("Error: Gateway can not be a local address.", 2);
                if (!IsLinkLocal(gw))
                {
                    RouteView? via = DirectRouteTo(host, f, gw, dev?.Name) ?? throw new NetworkException("RTNETLINK answers: No route to host", 2);
                    outDev ??= via.Device;
                }
            }
        }
        if (route.Src is { } src && !IsLocalAddress(host, f, src))
        {
            throw new NetworkException(f == IpFamily.V4 ? "Error: Invalid prefsrc address." : "Error: Invalid source address.", 2);
        }
        route = route with { Device = outDev };
        if (replace)
        {
            int at = host.Routes.FindIndex(r => r.Family == f && r.Table == route.Table && r.Prefix == route.Prefix && r.PrefixLength == route.PrefixLength && r.Metric == route.Metric);
            if (at >= 0)
            {
                host.Routes[at] = route;
                return;
            }
        }
        if (Routes(host, f, route.Table ?? "main").Any(r => r.Prefix == route.Prefix && r.PrefixLength == route.PrefixLength && r.Metric == route.Metric))
        {
            throw new NetworkException("RTNETLINK answers: File exists", 2);
        }
        host.Routes.Add(route);
        if (route.Table is { } tbl) host.RouteTables.Add(tbl);
    }

    /// <summary>The most specific route without a gateway that covers <paramref name="address"/>.</summary>
    private static RouteView? DirectRouteTo(VirtualHost host, IpFamily f, UInt128 address, string? dev)
    {
        return Routes(host, f, "main")
            .Where(r => r.Via is null && (address & Mask(f, r.PrefixLength)) == r.Prefix && (dev is null || r.Device == dev))
            .OrderByDescending(r => r.PrefixLength)
            .FirstOrDefault();
    }

    /// <summary><c>ip route del</c>: the first route that matches every given field.</summary>
    public static void DeleteRoute(VirtualHost host, IpFamily f, UInt128 prefix, int len, string? dev, UInt128? via, int? metric, string? proto, string table = "main", string? type = null)
    {
        if (dev is not null) RequireLink(host, dev);
        bool Matches(RouteView r) =>
            r.Prefix == prefix && r.PrefixLength == len && (type is null || r.Type == type) && (dev is null || r.Device == dev) && (via is null || r.Via == via)
            && (metric is null || r.Metric == metric) && (proto is null || (r.Proto ?? "boot") == proto);
        // ip6_route_del: ::/0 without a gateway or device lands on the null entry (ENOENT); the rest is ESRCH.
        RouteView? hit = Routes(host, f, table).FirstOrDefault(Matches)
            ?? throw new NetworkException(
                f == IpFamily.V6 && len == 0 && via is null && dev is null ? "RTNETLINK answers: No such file or directory" : "RTNETLINK answers: No such process", 2);
        Remove(host, hit);
    }

    /// <summary><c>ip route flush</c>: every route of the table (main unless given) that matches the filters.</summary>
    public static void FlushRoutes(VirtualHost host, IpFamily f, string table, string? dev, string? proto)
    {
        if (dev is not null) RequireLink(host, dev);
        foreach (RouteView r in Routes(host, f, table).Where(r => (dev is null || r.Device == dev) && (proto is null || (r.Proto ?? "boot") == proto)).ToList())
        {
            Remove(host, r);
        }
    }

    private static void Remove(VirtualHost host, RouteView hit)
    {
        IpFamily f = hit.Family;
        if (hit.IsKernel)
        {
            // The kernel's own route goes until the link comes up again or the address is added anew.
            host.HiddenRoutes.Add(hit.Key);
            return;
        }
        int i = host.Routes.FindIndex(r => r.Family == f && (r.Table ?? "main") == hit.Table && r.Prefix == hit.Prefix && r.PrefixLength == hit.PrefixLength && r.Metric == hit.Metric && r.Device == hit.Device && r.Via == hit.Via);
        host.Routes.RemoveAt(i);
    }

    private static void AddInterfaceSysctls(VirtualHost host, string name)
    {
        foreach (string fam in new[] { "net.ipv4.conf.", "net.ipv6.conf." })
        {
            foreach (string suffix in Sysctl.PerInterfaceSuffixes(fam))
            {
                string def = host.GetSysctl(fam + "default." + suffix) ?? Sysctl.Defaults[fam + "default." + suffix];
                host.Sysctls[fam + name + "." + suffix] = def;
            }
        }
    }

    private static void RemoveInterfaceSysctls(VirtualHost host, string name)
    {
        foreach (string k in host.Sysctls.Keys.Where(k => k.StartsWith("net.ipv4.conf." + name + ".", StringComparison.Ordinal) || k.StartsWith("net.ipv6.conf." + name + ".", StringComparison.Ordinal)).ToList())
        {
            host.Sysctls.Remove(k);
        }
    }
}
