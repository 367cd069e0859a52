using Chainwalk.Conntrack;
using Chainwalk.Engine;
using Chainwalk.Host;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Wire;

namespace Chainwalk.Nat;

/// <summary>
/// The nat hooks (nf_nat_ipv4_fn / nf_nat_ipv6_fn and nf_nat_inet_fn in net/netfilter/nf_nat_proto.c and
/// nf_nat_core.c) at PREROUTING and OUTPUT (-100, destination) and INPUT and POSTROUTING (100, source). The
/// nat table is walked only for a connection's first packet, before its binding for this manip type exists;
/// without a binding from a rule a null binding is set up. Every packet of a NATed connection is then
/// rewritten (replies un-NATed), and ICMP errors RELATED to one get their quoted packet translated too.
/// </summary>
public static class NatHooks
{
    /// <summary>Whether the nat table's chain at this hook must be walked for the packet.</summary>
    public static bool NeedsRules(PacketContext ctx)
    {
        Skb skb = ctx.Skb;
        if (skb.Conntrack is not ConnEntry ct) return false;
        switch (skb.CtInfo)
        {
            case CtInfo.Related:
            case CtInfo.RelatedReply:
                // RELATED ICMP (errors) are translated after their connection, never walk the table.
                if (skb.Packet.IsIcmp) return false;
                break;
            case CtInfo.New:
                break;
            default:
                return false;
        }
        return !NatCore.Initialized(ct, NatCore.ManipOf(ctx.Hook));
    }

    /// <summary>After the nat chain: the null binding if none was made, then the translation; false = drop.</summary>
    public static bool Apply(PacketContext ctx, ConntrackTable table)
    {
        Skb skb = ctx.Skb;
        if (skb.Conntrack is not ConnEntry ct) return true;
        // The nat hooks exist only while the family has a nat table (nf_nat_register_fn registers all four with the
        // first nat chain): without one nothing is bound or translated, not even a source port clash.
        if (ctx.Netfilter.NatTable(skb.Family) is null) return true;
        return Apply(ctx, table, ct, rulesWalked: false);
    }

    /// <summary>
    /// <see cref="Apply(PacketContext, ConntrackTable)"/> for the pipeline's nat step (Netfilter.RunHookTable), which runs
    /// only when the hook's plan has the family's nat table (so that check is not made again), and says whether it walked
    /// the rules (<see cref="NeedsRules"/> was true). nf_nat_inet_fn goes from a binding the walk made straight to
    /// nf_nat_packet (do_nat), without nf_nat_oif_changed; only a binding made before this hook is checked for it.
    /// </summary>
    internal static bool ApplyAfterRules(PacketContext ctx, ConntrackTable table, bool rulesWalked)
    {
        if (ctx.Skb.Conntrack is not ConnEntry ct) return true;
        return Apply(ctx, table, ct, rulesWalked);
    }

    private static bool Apply(PacketContext ctx, ConntrackTable table, ConnEntry ct, bool rulesWalked)
    {
        Skb skb = ctx.Skb;
        NatManip manip = NatCore.ManipOf(ctx.Hook);
        CtInfo info = skb.CtInfo;
        bool kill = false;
        switch (info)
        {
            case CtInfo.Related:
            case CtInfo.RelatedReply:
                if (skb.Packet.IsIcmp) return IcmpReplyTranslation(ctx, ct, info, manip);
                goto case CtInfo.New;
            case CtInfo.New:
                if (!NatCore.Initialized(ct, manip))
                {
                    if (!NullBinding(ctx, ct, manip)) return false;
                }
                else if (!rulesWalked)
                {
                    kill = OifChanged(ctx, ct, info);
                }
                break;
            case CtInfo.Established:
            case CtInfo.EstablishedReply:
                kill = OifChanged(ctx, ct, info);
                break;
            default:
                return true;
        }
        if (kill) return Kill(ctx, ct, table);
        return Packet(ctx, ct, info, manip);
    }

    // The rare steps of Apply and Packet out of line (NoInlining): their strings and 64-byte tuples made the frames of the
    // callers, which every NATed packet sets up, 100-230 bytes cleared per call.

    /// <summary>nf_nat_alloc_null_binding at this hook, explained when it moved the connection; false = drop.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static bool NullBinding(PacketContext ctx, ConnEntry ct, NatManip manip)
    {
        if (NatCore.NullBinding(ctx, ct, manip, out string how).Kind != VerdictKind.Accept) return false;
        if (ct.Has(manip == NatManip.Src ? ConnStatus.SrcNat : ConnStatus.DstNat))
            ctx.Note($"nat {ctx.Hook.ChainName()}: no rule bound the connection; the null binding moved it ({how})");
        return true;
    }

    /// <summary>nf_ct_kill_acct: a masqueraded connection leaving by another interface is killed and the packet dropped (false).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static bool Kill(PacketContext ctx, ConnEntry ct, ConntrackTable table)
    {
        ctx.Note($"nat: the masqueraded connection left by {ct.MasqueradeDevice}, now by {ctx.OutDev}: killed and dropped");
        table.Remove(ct);
        return false;
    }

    /// <summary>nf_nat_oif_changed: a MASQUERADEd connection's original direction leaving POSTROUTING by another device.</summary>
    private static bool OifChanged(PacketContext ctx, ConnEntry ct, CtInfo info) =>
        ctx.Hook == Hook.Postrouting && info is CtInfo.New or CtInfo.Established or CtInfo.Related
        && ct.MasqueradeDevice is { } dev && !string.Equals(dev, ctx.OutDev, StringComparison.Ordinal);

    private static ConnDirection DirOf(CtInfo info) =>
        info is CtInfo.EstablishedReply or CtInfo.RelatedReply ? ConnDirection.Reply : ConnDirection.Original;

    /// <summary>The status bit that says whether this manip applies to packets of <paramref name="dir"/> (inverted for replies).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static bool Applies(ConnEntry ct, NatManip manip, ConnDirection dir)
    {
        ConnStatus bit = manip == NatManip.Src ? ConnStatus.SrcNat : ConnStatus.DstNat;
        if (dir == ConnDirection.Reply) bit = bit == ConnStatus.SrcNat ? ConnStatus.DstNat : ConnStatus.SrcNat;
        return ct.Has(bit);
    }

    /// <summary>nf_nat_packet: rewrites the packet to look like the inverse of the other direction's tuple.</summary>
    private static bool Packet(PacketContext ctx, ConnEntry ct, CtInfo info, NatManip manip)
    {
        ConnDirection dir = DirOf(info);
        if (!Applies(ct, manip, dir)) return true;
        Skb skb = ctx.Skb;
        Packet p = skb.Packet;
        // The flow path (Netfilter.FlowPath): an established IPv4 TCP/UDP packet gets its binding's address and port read
        // from the entry's fields, no tuple built and inverted; the same rewrite (NatPacket.ManipV4), the facts set from it.
        // A new connection's first packet (its bindings just made) is rewritten the same way.
        if ((info == CtInfo.New || info is CtInfo.Established or CtInfo.EstablishedReply && ctx.Netfilter.FlowPath) && p.Family == IpFamily.V4
            && p.Protocol is IpProtocol.Tcp or IpProtocol.Udp && ctx.Netfilter.Current?.Trace is null
            && ct.TryNatTargetV4(dir, manip, out uint newIp, out ushort newPort))
        {
            if (!NatPacket.ManipV4(skb.Bytes, 0, p.TotalLength, p.Protocol, newIp, newPort, manip))
            {
                ctx.Note("nat: the packet is too short to rewrite: dropped");
                return false;
            }
            // The facts from the values just written (Packet.TryAddressRewrittenV4: the re-read's checks, not its reads).
            if (!p.TryAddressRewrittenV4(manip == NatManip.Src, newIp, newPort)) skb.Reparse();
            return true;
        }
        return PacketGeneral(ctx, ct, dir, manip);
    }

    /// <summary><see cref="Packet"/>'s general way: the other direction's tuple inverted, the rewrite by tuple (any family and protocol, or a trace).</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static bool PacketGeneral(PacketContext ctx, ConnEntry ct, ConnDirection dir, NatManip manip)
    {
        Skb skb = ctx.Skb;
        Packet p = skb.Packet;
        ConnTuple other = dir == ConnDirection.Original ? ct.Reply : ct.Original;
        if (!other.TryInvert(out ConnTuple target)) return true;
        bool trace = ctx.Netfilter.Current?.Trace is not null;
        string? before = trace ? Side(p, manip) : null;
        if (!NatPacket.Manip(skb.Bytes, 0, p.TotalLength, target, manip))
        {
            ctx.Note("nat: the packet is too short to rewrite: dropped");
            return false;
        }
        skb.AddressesChanged();
        if (trace) Record(ctx, Label(manip, dir) + " " + before + " -> " + Side(skb.Packet, manip));
        return true;
    }

    private static string Label(NatManip manip, ConnDirection dir) => dir == ConnDirection.Original
        ? (manip == NatManip.Src ? "SNAT" : "DNAT")
        : (manip == NatManip.Src ? "un-DNAT (reply source)" : "un-SNAT (reply destination)");

    /// <summary>The address (and port) the manip changes, as "10.0.0.1:443".</summary>
    private static string Side(Packet p, NatManip manip)
    {
        UInt128 a = manip == NatManip.Src ? p.Source : p.Destination;
        string addr = IpNet.FormatAddress(a, p.Family);
        if (!p.HasPorts) return p.IsIcmp && p.HasTransportHeader && !p.IsIcmpError ? addr + " id " + p.IcmpId.ToString(System.Globalization.CultureInfo.InvariantCulture) : addr;
        ushort port = manip == NatManip.Src ? p.SourcePort : p.DestinationPort;
        string ps = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return p.Family == IpFamily.V6 ? "[" + addr + "]:" + ps : addr + ":" + ps;
    }

    private static void Record(PacketContext ctx, string what)
    {
        ctx.Netfilter.Current?.Trace?.Add(new ChangeEvent("nat", ctx.Hook.ChainName(), 0, what));
    }

    /// <summary>
    /// nf_nat_icmp_reply_translation / nf_nat_icmpv6_reply_translation: an ICMP error about a NATed connection.
    /// The quoted packet is rewritten to the other direction's tuple with the opposite manip, the ICMP checksum
    /// computed afresh, and the outer header made to look like a reply to the connection. A redirect about a NATed
    /// connection is dropped. False = drop.
    /// </summary>
    private static bool IcmpReplyTranslation(PacketContext ctx, ConnEntry ct, CtInfo info, NatManip manip)
    {
        Skb skb = ctx.Skb;
        Packet p = skb.Packet;
        if (!p.HasTransportHeader || p.TransportLength < 8 + (p.Family == IpFamily.V4 ? 20 : 40)) return false;
        if (!p.TransportChecksumValid)
        {
            ctx.Note("nat: ICMP error with a bad checksum: dropped");
            return false;
        }
        bool redirect = p.Family == IpFamily.V4 ? p.IcmpType == 5 : p.IcmpType == 137;
        if (redirect)
        {
            const ConnStatus done = ConnStatus.SrcNatDone | ConnStatus.DstNatDone;
            if ((ct.Status & done) != done || ct.Has(ConnStatus.SrcNat | ConnStatus.DstNat))
            {
                ctx.Note("nat: ICMP redirect about a connection that is NATed or not yet bound both ways: dropped");
                return false;
            }
        }
        ConnDirection dir = DirOf(info);
        if (!Applies(ct, manip, dir)) return true;
        if (!p.IsIcmpError) return true;
        ConnTuple other = ct.Tuple(dir == ConnDirection.Original ? ConnDirection.Reply : ConnDirection.Original);
        NatManip opposite = manip == NatManip.Src ? NatManip.Dst : NatManip.Src;
        bool trace = ctx.Netfilter.Current?.Trace is not null;
        string? before = trace ? Side(p, manip) : null;
        int icmpOff = p.TransportOffset;
        int len = p.TotalLength;
        byte[] b = skb.Bytes;
        if (!NatPacket.Manip(b, icmpOff + 8, len, other, opposite)) return false;
        NatPacket.RecomputeIcmp(b, icmpOff, len, p.Family);
        if (!other.TryInvert(out ConnTuple target)) return false;
        target = target with { Protocol = p.Family == IpFamily.V4 ? IpProtocol.Icmp : IpProtocol.Icmpv6 };
        if (!NatPacket.Manip(b, 0, len, target, manip)) return false;
        skb.Reparse();
        if (trace) Record(ctx, (dir == ConnDirection.Original ? (manip == NatManip.Src ? "SNAT" : "DNAT") : (manip == NatManip.Src ? "un-DNAT" : "un-SNAT"))
            + " ICMP error " + before + " -> " + Side(skb.Packet, manip) + " (quoted packet translated back)");
        return true;
    }

    /// <summary>
    /// masq_device_event / masq_inet_event (net/netfilter/nf_nat_masquerade.c): a MASQUERADEd connection dies when
    /// its interface goes down (or away) or loses the address it was masqueraded to. The kernel does it when the
    /// event happens; Chainwalk's host changes between commands, so it is done when the saved table is loaded.
    /// Returns how many connections were removed.
    /// </summary>
    public static int ForgetVanishedMasquerades(VirtualHost host, ConntrackTable table)
    {
        List<ConnEntry>? gone = null;
        foreach (ConnEntry ct in table.Entries)
        {
            if (ct.MasqueradeDevice is not { } dev) continue;
            Link? link = host.Links.Find(l => l.Name == dev);
            UInt128 address = ct.Reply.Destination;
            bool keep = link is { Up: true } && host.Addresses.Exists(a => a.Device == dev && a.Family == ct.Family && a.Address == address);
            if (!keep) (gone ??= []).Add(ct);
        }
        if (gone is null) return 0;
        foreach (ConnEntry ct in gone) table.Remove(ct);
        return gone.Count;
    }
}
