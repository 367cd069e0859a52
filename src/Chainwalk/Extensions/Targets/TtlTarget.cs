namespace Chainwalk.Extensions.Targets;

/// <summary><c>-j TTL --ttl-set|--ttl-inc|--ttl-dec N</c> (IPv4, libipt_TTL.c). mangle table.</summary>
public sealed class TtlTarget : HopLimitTargetBase
{
    public override string Name => "TTL";

    public override FamilyMask Families => FamilyMask.V4;

    protected override string Prefix => "ttl";
}
