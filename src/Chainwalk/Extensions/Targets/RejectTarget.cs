using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>The reply REJECT sends (ipt_reject_with / ip6t_reject_with; the numbers are the kernel's).</summary>
public sealed class RejectData : ExtensionData
{
    /// <summary>The kernel's enum value: for IPv4 <see cref="RejectTarget"/>, for IPv6 <see cref="Reject6Target"/> constants.</summary>
    public byte With;
}

/// <summary>
/// <c>-j REJECT</c> for IPv4 (libipt_REJECT.c, ipt_REJECT.c): filter table, INPUT/FORWARD/OUTPUT only;
/// tcp-reset needs <c>-p tcp</c> (not inverted). The name is matched case-insensitively as a prefix of
/// a type name or its alias, first entry wins (an empty name is the first type).
/// </summary>
public sealed class RejectTarget : XtExtension<RejectData>
{
    public const byte NetUnreachable = 0, HostUnreachable = 1, ProtoUnreachable = 2, PortUnreachable = 3, EchoReply = 4,
        NetProhibited = 5, HostProhibited = 6, TcpReset = 7, AdminProhibited = 8;

    internal static readonly (byte With, string Name, string Alias)[] Types =
    [
        (NetUnreachable, "icmp-net-unreachable", "net-unreach"),
        (HostUnreachable, "icmp-host-unreachable", "host-unreach"),
        (ProtoUnreachable, "icmp-proto-unreachable", "proto-unreach"),
        (PortUnreachable, "icmp-port-unreachable", "port-unreach"),
        (NetProhibited, "icmp-net-prohibited", "net-prohib"),
        (HostProhibited, "icmp-host-prohibited", "host-prohib"),
        (TcpReset, "tcp-reset", "tcp-rst"),
        (AdminProhibited, "icmp-admin-prohibited", "admin-prohib"),
    ];

    public override string Name => "REJECT";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override FamilyMask Families => FamilyMask.V4;

    public override IReadOnlyList<string>? Tables => ["filter"];

    public override HookMask Hooks => HookMask.Input | HookMask.Forward | HookMask.Output;

    public override IReadOnlyList<XtOption> Options { get; } = [new("reject-with", 0)];

    protected override void Init(ParseContext ctx, RejectData data) => data.With = PortUnreachable;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RejectData d)
    {
        d.With = Lookup(Types, argument!, echoReplyNotice: true, ctx);
    }

    /// <summary>strncasecmp(name, arg, strlen(arg)) against each name and alias, in table order.</summary>
    internal static byte Lookup((byte With, string Name, string Alias)[] types, string arg, bool echoReplyNotice, ParseContext? ctx = null)
    {
        foreach (var t in types)
        {
            if (IsPrefix(arg, t.Name) || IsPrefix(arg, t.Alias)) return t.With;
        }
        if (echoReplyNotice && (IsPrefix(arg, "echo-reply") || IsPrefix(arg, "echoreply")))
        {
            // iptables says so on stderr before its error.
            ctx?.Warn("--reject-with echo-reply no longer supported");
        }
        throw XtablesException.Param($"unknown reject type \"{arg}\"");
    }

    private static bool IsPrefix(string arg, string name) =>
        arg.Length <= name.Length && string.Compare(name, 0, arg, 0, arg.Length, StringComparison.OrdinalIgnoreCase) == 0;

    internal static string NameOf((byte With, string Name, string Alias)[] types, byte with)
    {
        foreach (var t in types)
        {
            if (t.With == with) return t.Name;
        }
        return string.Empty;
    }

    protected override void Save(StringBuilder sb, RejectData d, IpFamily family) =>
        sb.Append(" --reject-with ").Append(NameOf(Types, d.With));

    protected override void Print(StringBuilder sb, RejectData d, IpFamily family, bool numeric) =>
        sb.Append(" reject-with ").Append(NameOf(Types, d.With));

    protected override string? CheckEntry(RuleCheckContext ctx, RejectData d)
    {
        if (d.With == EchoReply) return RulesetEditor.InvalidArgument;
        if (d.With == TcpReset && (ctx.Rule.Protocol != Protocols.Tcp || ctx.Rule.ProtocolInverted)) return RulesetEditor.InvalidArgument;
        return null;
    }

    /// <summary>
    /// ipt_REJECT.c reject_tg: an ICMP destination-unreachable (nf_send_unreach: not about a later fragment or a
    /// packet with a bad checksum; icmp_send's own rules then) or a TCP reset (nf_send_reset); the packet is dropped
    /// whether or not a reply could be sent.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, RejectData data)
    {
        string name = NameOf(Types, data.With);
        byte[]? reply;
        if (data.With == TcpReset)
        {
            reply = RejectReplies.TcpReset4(ctx.Host, ctx.Packet);
        }
        else
        {
            byte code = data.With switch
            {
                NetUnreachable => 0,
                HostUnreachable => 1,
                ProtoUnreachable => 2,
                NetProhibited => 9,
                HostProhibited => 10,
                AdminProhibited => 13,
                _ => 3,
            };
            reply = RejectReplies.MayUnreach4(ctx.Packet) ? IcmpErrors.Build(ctx.Host, ctx.Skb, 3, code, 0, ctx.State) : null;
        }
        if (reply is not null) ctx.SendLocal(reply);
        else ctx.Note($"REJECT {name}: the kernel sends no reply for this packet");
        ctx.Rejected(name);
        return Verdict.Drop;
    }
}
