using Chainwalk.Extensions;
using Chainwalk.Net;
using Xunit;

namespace Chainwalk.Tests.Extensions;

/// <summary>
/// The registry's written-out list of extensions (ExtensionRegistry.Create, no reflection at run time) holds every
/// extension class once: a new class missing from the list fails here.
/// </summary>
public class ExtensionRegistryTests
{
    [Fact]
    public void Registry_holds_every_extension_class_exactly_once()
    {
        string[] listed = ExtensionRegistry.All.Select(e => e.GetType().FullName!).Order(StringComparer.Ordinal).ToArray();
        string[] found = ExtensionRegistry.Discover().Select(t => t.FullName!).Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(found);
        Assert.Equal(found, listed);
    }

    [Fact]
    public void Registry_is_ordered_by_name_with_each_family_s_own_variant_in_a_fixed_order()
    {
        string[] names = ExtensionRegistry.All.Select(e => e.Name).ToArray();
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        // Two classes share a name (a family's own variant): their order is the list's, as it was when found by reflection.
        string[] reject = ExtensionRegistry.All.Where(e => e.Name == "REJECT").Select(e => e.GetType().Name).ToArray();
        Assert.Equal(["RejectTarget", "Reject6Target"], reject);
        string[] ah = ExtensionRegistry.All.Where(e => e.Name == "ah").Select(e => e.GetType().Name).ToArray();
        Assert.Equal(["Ah6Match", "AhMatch"], ah);
    }

    [Fact]
    public void Lookup_by_name_gives_the_first_of_All_per_name_kind_and_family_and_the_same_instance()
    {
        // The extensions are made per name on first lookup: what Find gives must be what a scan of All gives, as the
        // table by (name, kind, family) built from All gave before.
        int checkedCount = 0;
        foreach (string name in ExtensionRegistry.All.Select(e => e.Name).Distinct())
        {
            foreach (ExtensionKind kind in new[] { ExtensionKind.Match, ExtensionKind.Target })
            {
                foreach ((IpFamily family, FamilyMask mask) in new[] { (IpFamily.V4, FamilyMask.V4), (IpFamily.V6, FamilyMask.V6) })
                {
                    XtExtension? expected = ExtensionRegistry.All.FirstOrDefault(e => e.Name == name && e.Kind == kind && (e.Families & mask) != 0);
                    Assert.Same(expected, ExtensionRegistry.Find(name, kind, family));
                    checkedCount++;
                }
            }
        }
        Assert.Equal(ExtensionRegistry.All.Select(e => e.Name).Distinct().Count() * 4, checkedCount);
        Assert.Same(ExtensionRegistry.All.Single(e => e.GetType() == typeof(Chainwalk.Extensions.Targets.Reject6Target)), ExtensionRegistry.FindTarget("REJECT", IpFamily.V6));
        Assert.Same(ExtensionRegistry.All.Single(e => e.GetType() == typeof(Chainwalk.Extensions.Matches.AhMatch)), ExtensionRegistry.FindMatch("ah", IpFamily.V4));
        // Names are case-sensitive and exact; a chain name is no extension.
        Assert.Null(ExtensionRegistry.FindMatch("TCP", IpFamily.V4));
        Assert.Null(ExtensionRegistry.FindTarget("mark", IpFamily.V4));
        Assert.Null(ExtensionRegistry.FindTarget("KUBE-SERVICES", IpFamily.V4));
        Assert.Null(ExtensionRegistry.FindMatch("", IpFamily.V6));
    }
}
