using Chainwalk.Extensions;
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
}
