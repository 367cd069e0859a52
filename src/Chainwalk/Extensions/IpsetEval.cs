using System.Globalization;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Wire;

namespace Chainwalk.Extensions;

/// <summary>How a packet is looked up in, added to or deleted from a set (the kernel's struct ip_set_adt_opt).</summary>
public readonly record struct IpsetOptions(int Dimensions, byte SourceFlags)
{
    /// <summary>Whether dimension <paramref name="i"/> (1-based) takes the source address or port.</summary>
    public bool IsSource(int i) => (SourceFlags & (1 << i)) != 0;
}

/// <summary>The result of testing a packet against a set: not in it, in it, or in it as a nomatch entry (-ENOTEMPTY).</summary>
public enum IpsetTestResult : sbyte
{
    NoMatch = -1,
    Absent = 0,
    Match = 1,
}

/// <summary>
/// The kernel side of ipset for packets (net/netfilter/ipset/ip_set_core.c and the ip_set_hash_*/bitmap_port/
/// list_set kadt functions): the element a packet stands for in each set type, test with the match
/// extensions (timeout, counters), add and delete.
/// </summary>
public static class IpsetEval
{
    /// <summary>Dimensions of a set type (the kernel refuses a lookup with fewer src/dst flags).</summary>
    public static int Dimensions(IpSet set) => set.Type switch
    {
        "hash:ip" or "hash:net" or "bitmap:port" or "list:set" => 1,
        "hash:ip,port" or "hash:net,port" => 2,
        _ => 3,
    };

    /// <summary>Whether the type has nomatch entries (IPSET_TYPE_NOMATCH).</summary>
    private static bool HasNomatch(IpSet set) => set.IsNet;

    private static bool FamilyFits(IpSet set, IpFamily family) => !set.HasFamily || set.Family == family;

    /// <summary>
    /// The element parts a packet gives for the set: the address (dimension 1, masked by a hash:ip netmask),
    /// the "proto:port" text (dimension 2), the third address; false when the packet has none (the kadt's
    /// -EINVAL: a non-first fragment, a truncated header).
    /// </summary>
    private static bool Element(PacketContext ctx, IpSet set, IpsetOptions o, out UInt128 first, out string rest, out UInt128 third)
    {
        Packet p = ctx.Packet;
        first = o.IsSource(1) ? p.Source : p.Destination;
        if (set.Type == "hash:ip" && set.Netmask is int nm) first &= IpNet.PrefixMask(ctx.Family, nm);
        rest = "";
        third = UInt128.Zero;
        if (set.HasPort)
        {
            if (!PortText(ctx, o.IsSource(2), out string port)) return false;
            rest = port;
            if (set.HasThird)
            {
                third = o.IsSource(3) ? p.Source : p.Destination;
                rest = IpNet.FormatAddress(first, ctx.Family) + "," + port;
            }
        }
        return true;
    }

    /// <summary>ip_set_get_ip_port: "tcp:80" for TCP/UDP/SCTP/UDPLITE, "icmp:NAME" for ICMP (type/code), "PROTO:0" for others.</summary>
    private static bool PortText(PacketContext ctx, bool source, out string text)
    {
        Packet p = ctx.Packet;
        text = "";
        byte proto = p.Protocol;
        bool icmp = proto == (ctx.Family == IpFamily.V4 ? 1 : 58);
        if (proto is 6 or 17 or 132 or 136 || icmp)
        {
            if (p.IsNonFirstFragment) return false;
            int at = p.TransportOffset;
            if (at + 4 > p.TotalLength || at + 4 > p.Bytes.Length) return false;
            if (icmp)
            {
                text = (ctx.Family == IpFamily.V4 ? "icmp:" : "ipv6-icmp:") + IcmpName(ctx.Family, p.Bytes[at], p.Bytes[at + 1]);
                return true;
            }
            int off = source ? at : at + 2;
            int port = (p.Bytes[off] << 8) | p.Bytes[off + 1];
            string name = proto switch { 6 => "tcp", 17 => "udp", 132 => "sctp", _ => "udplite" };
            text = name + ":" + port.ToString(CultureInfo.InvariantCulture);
            return true;
        }
        // Other protocols have no ports: the element is PROTO:0, which the ipset command cannot write here.
        text = proto.ToString(CultureInfo.InvariantCulture) + ":0";
        return true;
    }

    private static string IcmpName(IpFamily family, byte type, byte code)
    {
        foreach (XtParse.IcmpName n in family == IpFamily.V4 ? Matches.IcmpMatch.Codes : Matches.Icmp6Match.Codes)
        {
            if (n.Type == type && n.CodeMin == code) return n.Name;
        }
        return type.ToString(CultureInfo.InvariantCulture) + "/" + code.ToString(CultureInfo.InvariantCulture);
    }

    private static bool Expired(PacketContext ctx, IpsetMember m) => m.ExpiresAt is double e && e <= ctx.Now;

    /// <summary>
    /// ip_set_test: 0 when the flags give fewer dimensions than the type has, or the family differs; else
    /// the kadt test. Entries are searched most specific network first; an expired entry, or one whose counters
    /// fail the --packets/--bytes comparison, is passed over; the counters of the entry looked at are updated
    /// first unless <paramref name="updateCounters"/> is false.
    /// </summary>
    public static IpsetTestResult Test(PacketContext ctx, IpsetStore store, IpSet set, IpsetOptions o, bool updateCounters = true,
        bool updateSubcounters = true, Func<IpsetMember, bool>? counterCheck = null)
    {
        if (set.Type == "list:set")
        {
            foreach (IpsetMember m in set.Members)
            {
                if (Expired(ctx, m) || store.Get(m.Key) is not { } inner) continue;
                IpsetTestResult r = Test(ctx, store, inner, o, updateSubcounters, updateSubcounters, counterCheck);
                if (r == IpsetTestResult.Match)
                {
                    if (set.Counters && updateCounters) Count(ctx, m);
                    return r;
                }
            }
            return IpsetTestResult.Absent;
        }
        if (o.Dimensions < Dimensions(set) || !FamilyFits(set, ctx.Family)) return IpsetTestResult.Absent;
        if (set.Type == "bitmap:port")
        {
            if (!BitmapPort(ctx, o, out int port) || port < set.RangeFrom || port > set.RangeTo) return IpsetTestResult.Absent;
            foreach (IpsetMember m in set.Members)
            {
                if (m.Address == (UInt128)port) return Extensions(ctx, set, m, updateCounters, counterCheck) ? IpsetTestResult.Match : IpsetTestResult.Absent;
            }
            return IpsetTestResult.Absent;
        }
        if (!Element(ctx, set, o, out UInt128 first, out string rest, out UInt128 third)) return IpsetTestResult.Absent;
        UInt128 addr = set.HasThird ? third : first;
        if (!set.IsNet)
        {
            foreach (IpsetMember m in set.Members)
            {
                if (m.Address == addr && m.Rest == rest)
                    return Extensions(ctx, set, m, updateCounters, counterCheck) ? IpsetTestResult.Match : IpsetTestResult.Absent;
            }
            return IpsetTestResult.Absent;
        }
        // mtype_test_cidrs: the prefixes in the set, longest first.
        int full = ctx.Family == IpFamily.V4 ? 32 : 128;
        foreach (int prefix in set.Members.Select(m => m.Prefix).Distinct().OrderByDescending(x => x))
        {
            UInt128 net = addr & IpNet.PrefixMask(ctx.Family, Math.Min(prefix, full));
            foreach (IpsetMember m in set.Members)
            {
                if (m.Prefix != prefix || m.Address != net || m.Rest != rest) continue;
                if (!Extensions(ctx, set, m, updateCounters, counterCheck)) continue;
                return m.NoMatch ? IpsetTestResult.NoMatch : IpsetTestResult.Match;
            }
        }
        return IpsetTestResult.Absent;
    }

    /// <summary>ip_set_match_extensions: timeout, then the counters (updated, then compared).</summary>
    private static bool Extensions(PacketContext ctx, IpSet set, IpsetMember m, bool updateCounters, Func<IpsetMember, bool>? counterCheck)
    {
        if (Expired(ctx, m)) return false;
        if (set.Counters)
        {
            if (updateCounters) Count(ctx, m);
            if (counterCheck is not null && !counterCheck(m)) return false;
        }
        return true;
    }

    private static void Count(PacketContext ctx, IpsetMember m)
    {
        m.Packets = (m.Packets ?? 0) + 1;
        m.Bytes = (m.Bytes ?? 0) + ctx.Skb.Length;
    }

    /// <summary>bitmap:port: the TCP or UDP port of the direction (other protocols and fragments have none).</summary>
    private static bool BitmapPort(PacketContext ctx, IpsetOptions o, out int port)
    {
        port = 0;
        Packet p = ctx.Packet;
        if (p.Protocol is not (6 or 17) || p.IsNonFirstFragment) return false;
        int at = p.TransportOffset + (o.IsSource(1) ? 0 : 2);
        if (at + 2 > p.TotalLength || at + 2 > p.Bytes.Length) return false;
        port = (p.Bytes[at] << 8) | p.Bytes[at + 1];
        return true;
    }

    /// <summary>
    /// The SET target's ip_set_add: the packet's element joins the set (hash:net types: the address under the
    /// set's longest prefix in use, /32 or /128 when empty). An existing live entry is an error unless
    /// <paramref name="exist"/>, which refreshes its timeout. <paramref name="timeout"/> null: the set's
    /// default; 0: permanent. A full set refuses. list:set adds to the first member set that takes it.
    /// </summary>
    public static bool Add(PacketContext ctx, IpsetStore store, IpSet set, IpsetOptions o, long? timeout, bool exist)
    {
        if (set.Type == "list:set")
        {
            foreach (IpsetMember m in set.Members)
            {
                if (store.Get(m.Key) is { } inner && Add(ctx, store, inner, o, timeout, exist)) return true;
            }
            return false;
        }
        if (!Locate(ctx, set, o, out UInt128 addr, out int prefix, out string rest, out string key)) return false;
        set.Members.RemoveAll(m => Expired(ctx, m) && m.Key == key);
        long? t = set.Timeout is null ? null : timeout ?? set.Timeout;
        IpsetMember? old = set.Members.Find(m => m.Key == key);
        if (old is not null)
        {
            if (!exist) return false;
            old.Timeout = t;
            old.ExpiresAt = t is > 0 ? ctx.Now + t.Value : null;
            return true;
        }
        if (set.Members.Count >= set.MaxElem) return false;
        var e = new IpsetMember
        {
            Key = key, Address = addr, Prefix = prefix, Rest = rest, Timeout = t,
            ExpiresAt = t is > 0 ? ctx.Now + t.Value : null,
            Packets = set.Counters ? 0 : null, Bytes = set.Counters ? 0 : null,
        };
        set.Members.Add(e);
        if (set.Type == "bitmap:port") set.Members.Sort((x, y) => x.Address.CompareTo(y.Address));
        return true;
    }

    /// <summary>The SET target's ip_set_del: removes the packet's element (list:set: from the first member set that has it).</summary>
    public static bool Delete(PacketContext ctx, IpsetStore store, IpSet set, IpsetOptions o)
    {
        if (set.Type == "list:set")
        {
            foreach (IpsetMember m in set.Members)
            {
                if (store.Get(m.Key) is { } inner && Delete(ctx, store, inner, o)) return true;
            }
            return false;
        }
        if (!Locate(ctx, set, o, out _, out _, out _, out string key)) return false;
        return set.Members.RemoveAll(m => m.Key == key && !Expired(ctx, m)) > 0;
    }

    /// <summary>The element a packet adds or deletes, with its canonical key (as the ipset command writes it).</summary>
    private static bool Locate(PacketContext ctx, IpSet set, IpsetOptions o, out UInt128 addr, out int prefix, out string rest, out string key)
    {
        addr = UInt128.Zero;
        prefix = 0;
        rest = "";
        key = "";
        if (o.Dimensions < Dimensions(set) || !FamilyFits(set, ctx.Family)) return false;
        int full = ctx.Family == IpFamily.V4 ? 32 : 128;
        if (set.Type == "bitmap:port")
        {
            if (!BitmapPort(ctx, o, out int port) || port < set.RangeFrom || port > set.RangeTo) return false;
            addr = (UInt128)port;
            key = port.ToString(CultureInfo.InvariantCulture);
            return true;
        }
        if (!Element(ctx, set, o, out UInt128 first, out rest, out UInt128 third)) return false;
        prefix = full;
        if (set.IsNet)
        {
            // INIT_CIDR(h->nets[0].cidr[0], HOST_MASK): the set's longest prefix, or a host.
            if (set.Members.Count > 0) prefix = set.Members.Max(m => m.Prefix);
        }
        UInt128 a = set.HasThird ? third : first;
        addr = a & IpNet.PrefixMask(ctx.Family, prefix);
        string shown = IpNet.FormatAddress(addr, ctx.Family) + (set.IsNet && prefix != full ? "/" + prefix.ToString(CultureInfo.InvariantCulture) : "");
        key = set.HasThird ? rest + "," + shown : rest.Length == 0 ? shown : shown + "," + rest;
        return true;
    }
}
