using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;
using Chainwalk.Syntax;

namespace Chainwalk.Extensions.Targets;

/// <summary>
/// <c>-j REJECT</c> for IPv6 (libip6t_REJECT.c, ip6t_REJECT.c): filter table, INPUT/FORWARD/OUTPUT only;
/// tcp-reset needs <c>-p tcp</c> (not inverted).
/// </summary>
public sealed class Reject6Target : XtExtension<RejectData>
{
    public const byte NoRoute = 0, AdmProhibited = 1, NotNeighbour = 2, AddrUnreach = 3, PortUnreach = 4, EchoReply = 5,
        TcpReset = 6, PolicyFail = 7, RejectRoute = 8;

    internal static readonly (byte With, string Name, string Alias)[] Types =
    [
        (NoRoute, "icmp6-no-route", "no-route"),
        (AdmProhibited, "icmp6-adm-prohibited", "adm-prohibited"),
        (AddrUnreach, "icmp6-addr-unreachable", "addr-unreach"),
        (PortUnreach, "icmp6-port-unreachable", "port-unreach"),
        (TcpReset, "tcp-reset", "tcp-reset"),
        (PolicyFail, "icmp6-policy-fail", "policy-fail"),
        (RejectRoute, "icmp6-reject-route", "reject-route"),
    ];

    public override string Name => "REJECT";

    public override ExtensionKind Kind => ExtensionKind.Target;

    public override FamilyMask Families => FamilyMask.V6;

    public override IReadOnlyList<string>? Tables => ["filter"];

    public override HookMask Hooks => HookMask.Input | HookMask.Forward | HookMask.Output;

    public override IReadOnlyList<XtOption> Options { get; } = [new("reject-with", 0)];

    protected override void Init(ParseContext ctx, RejectData data) => data.With = PortUnreach;

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RejectData d) =>
        d.With = RejectTarget.Lookup(Types, argument!, echoReplyNotice: false);

    protected override void Save(StringBuilder sb, RejectData d, IpFamily family) =>
        sb.Append(" --reject-with ").Append(RejectTarget.NameOf(Types, d.With));

    protected override void Print(StringBuilder sb, RejectData d, IpFamily family, bool numeric) =>
        sb.Append(" reject-with ").Append(RejectTarget.NameOf(Types, d.With));

    protected override string? CheckEntry(RuleCheckContext ctx, RejectData d)
    {
        if (d.With == EchoReply) return RulesetEditor.InvalidArgument;
        if (d.With == TcpReset && (ctx.Rule.Protocol != Protocols.Tcp || ctx.Rule.ProtocolInverted)) return RulesetEditor.InvalidArgument;
        return null;
    }

    /// <summary>
    /// ip6t_REJECT.c reject_tg6: an ICMPv6 destination-unreachable (nf_send_unreach6: the checksum must be valid
    /// and the packet not a later fragment; icmp6_send's own rules then) or a TCP reset (nf_send_reset6); the
    /// packet is dropped whether or not a reply could be sent.
    /// </summary>
    protected override Verdict Execute(PacketContext ctx, RejectData data)
    {
        string name = RejectTarget.NameOf(Types, data.With);
        byte[]? reply;
        if (data.With == TcpReset)
        {
            reply = RejectReplies.TcpReset6(ctx.Host, ctx.Packet);
        }
        else
        {
            byte code = data.With switch
            {
                NoRoute => 0,
                AdmProhibited => 1,
                AddrUnreach => 3,
                PolicyFail => 5,
                RejectRoute => 6,
                _ => 4,
            };
            reply = RejectReplies.MayUnreach6(ctx.Packet) ? IcmpErrors.Build(ctx.Host, ctx.Skb, 1, code, 0, ctx.State) : null;
        }
        if (reply is not null) ctx.SendLocal(reply);
        else ctx.Note($"REJECT {name}: the kernel sends no reply for this packet");
        ctx.Rejected(name);
        return Verdict.Drop;
    }
}
