using System.Text;
using Chainwalk.Engine;
using Chainwalk.Net;
using Chainwalk.Rules;

namespace Chainwalk.Extensions.Matches;

/// <summary>Options of <c>-m realm</c> (struct xt_realm_info).</summary>
public sealed class RealmData : ExtensionData
{
    public uint Id;
    public uint Mask = uint.MaxValue;
    public bool Invert;
}

/// <summary>
/// <c>-m realm [!] --realm value[/mask]|NAME</c>, IPv4 only (libipt_realm.c, xt_realm.c: INPUT, FORWARD, OUTPUT,
/// POSTROUTING). Names come from /etc/iproute2/rt_realms; the save form uses them, -n does not.
/// </summary>
public sealed class RealmMatch : XtExtension<RealmData>
{
    private static readonly Lazy<IReadOnlyList<(int Id, string Name)>?> Realms = new(() => XtParse.LoadLmap("iproute2/rt_realms"));

    public override string Name => "realm";

    public override ExtensionKind Kind => ExtensionKind.Match;

    public override FamilyMask Families => FamilyMask.V4;

    public override HookMask Hooks => HookMask.Postrouting | HookMask.Forward | HookMask.Output | HookMask.Input;

    public override IReadOnlyList<XtOption> Options { get; } =
    [
        new("realm", 0, OptionArg.Required, OptFlags.Invert | OptFlags.Mandatory),
    ];

    protected override void Parse(ParseContext ctx, XtOption option, string? argument, bool invert, RealmData d)
    {
        (d.Id, d.Mask) = XtParse.ValMask(argument!, Name, option.Name, Realms.Value);
        if (invert) d.Invert = true;
    }

    protected override void Save(StringBuilder sb, RealmData d, IpFamily family)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" --realm");
        XtParse.AppendValMask(sb, d.Id, d.Mask, Realms.Value);
    }

    protected override void Print(StringBuilder sb, RealmData d, IpFamily family, bool numeric)
    {
        if (d.Invert) sb.Append(" !");
        sb.Append(" realm");
        XtParse.AppendValMask(sb, d.Id, d.Mask, numeric ? null : Realms.Value);
    }

    /// <summary>xt_realm.c: id == (route tclassid &amp; mask); the id itself is not masked.</summary>
    protected override bool Match(PacketContext ctx, RealmData d) => (d.Id == (ctx.Skb.Realm & d.Mask)) ^ d.Invert;
}
