from reviews.app import list_reviews


def test_empty_product_has_no_reviews():
    assert list_reviews("SKU-1") == []
